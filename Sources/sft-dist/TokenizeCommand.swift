import ArgumentParser
import Distributed
import Foundation
import Models
import Training

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print token ids of a text as JSON.")

    @Argument(help: "Text to tokenize (default: standard input).") var text: String?
    @Option(help: "Model directory whose tokenizer to use (default: the byte tokenizer).") var model: String?
    @Option(help: "A Hugging Face tokenizer.json (tokenizer_config.json beside it is read too).") var tokenizer: String?
    @Flag(help: "Treat special-token strings as plain text.") var plain = false

    /// Standard input is read up to this size: `tokenize < /dev/zero` is an error, not a hang.
    static let maxInputBytes = 1 << 26

    func run() throws {
        let tokenizer: Tokenizer
        if model != nil && self.tokenizer != nil {
            printError("sft-dist: error: give --model or --tokenizer, not both"); throw ExitCode(1)
        }
        if let path = self.tokenizer {
            tokenizer = try BPETokenizer(path: path)
        } else if let model {
            tokenizer = try RunSetup.loadModel(model, seed: 0).1
        } else {
            tokenizer = ByteTokenizer()
        }
        var input = text ?? ""
        if text == nil {
            input = String(decoding: try InputFile.readAll(0, limit: Self.maxInputBytes, name: "standard input",
                                                           what: "tokenize input"), as: UTF8.self)
        }
        let ids = plain ? tokenizer.encodePlain(input) : tokenizer.encode(input)
        print("[" + ids.map(String.init).joined(separator: ", ") + "]")
    }
}
