import ArgumentParser
import Distributed
import Foundation
import Models
import Training

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print token ids of a text as JSON.")

    @Argument(help: "Text to tokenize (default: standard input).") var text: String?
    @Option(help: "Model directory whose tokenizer to use (default: the byte tokenizer).") var model: String?
    @Flag(help: "Treat special-token strings as plain text.") var plain = false

    func run() throws {
        let tokenizer: Tokenizer
        if let model {
            do { tokenizer = try RunSetup.loadModel(model, seed: 0).1 } catch {
                printError("sft-dist: error: \(error)"); throw ExitCode(1)
            }
        } else {
            tokenizer = ByteTokenizer()
        }
        let input = text ?? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        let ids = plain ? tokenizer.encodePlain(input) : tokenizer.encode(input)
        print("[" + ids.map(String.init).joined(separator: ", ") + "]")
    }
}
