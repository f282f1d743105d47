import ArgumentParser
import Distributed
import Foundation
import Models
import Training

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print token ids of a text as JSON.",
        discussion: """
        The text's own ids, as transformers' tokenizer(text, add_special_tokens=False): no BOS is \
        added (train, eval, score and generate put a Llama-3 tokenizer's BOS first, as \
        tokenizer(text) does). Special-token strings in the text are special tokens unless --plain.
        """)

    @Argument(help: "Text to tokenize (default: standard input).") var text: String?
    @Option(help: "Model or LoRA adapter directory whose tokenizer to use, or a preset (default: the byte tokenizer).") var model: String?
    @Option(help: "A Hugging Face tokenizer.json (tokenizer_config.json beside it is read too).") var tokenizer: String?
    @Flag(help: "Treat special-token strings as plain text.") var plain = false

    /// Standard input is read up to this size: `tokenize < /dev/zero` is an error, not a hang.
    static let maxInputBytes = 1 << 26

    /// `sft_dist_tokenizer.json` by name, or (a copy) by what `ModelDirectory.writeByteTokenizer`
    /// writes: an object of type `ByteTokenizer.name` without a tokenizer.json's "model". Files
    /// over 1 MiB (a real tokenizer.json) are not read twice.
    static func isByteTokenizerRecord(_ path: String) -> Bool {
        if (path as NSString).lastPathComponent == ModelDirectory.byteTokenizerFile { return true }
        guard let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int, size < 1 << 20,
              let object = try? JSONObjectFile.readIfPresent(path) else { return false }
        return object["type"] as? String == ByteTokenizer.name && object["model"] == nil
    }

    func run() throws {
        Runtime.singleProcess()
        let tokenizer: Tokenizer
        if model != nil && self.tokenizer != nil {
            printError("sft-dist: error: give --model or --tokenizer, not both"); throw ExitCode(1)
        }
        if let path = self.tokenizer {
            // A run on a preset saves only this file (or a copy of it): read as a tokenizer.json,
            // it was "field "model" is missing", which reads as a corrupt file.
            if Self.isByteTokenizerRecord(path) {
                printError("sft-dist: error: --tokenizer \(path) is sft-dist's byte-tokenizer record, not a Hugging Face tokenizer.json: the byte tokenizer is tokenize's default (drop --tokenizer), or give --model with the model's directory")
                throw ExitCode(1)
            }
            tokenizer = try BPETokenizer(path: path)
        } else if let model {
            // Only the tokenizer is read: loading the weights took a 0.5 B model's 2 GB to print
            // ids, and an adapter directory (which holds its tokenizer) was refused.
            // A preset (refused when ./NAME is also a model directory, as every --model is).
            if try ModelPresets.named(model, vocabSize: ByteTokenizer().vocabSize) != nil {
                tokenizer = ByteTokenizer()
            } else {
                try ModelDirectory.checkExists(model)
                tokenizer = try ModelDirectory.loadTokenizer(model)
                // The ids must be the model's: a tokenizer larger than config.json's vocab_size
                // printed ids no embedding row has (train refuses such a model). The config is
                // read, not the weights; one whose architecture sft-dist does not build is left be.
                let config = model + "/config.json"
                if FileManager.default.fileExists(atPath: config),
                   let arch = try? ModelDirectory.architecture(try JSONObjectFile.read(config), path: config) {
                    try ModelDirectory.checkTokenizer(tokenizer, fits: arch.vocabSize, dir: model)
                }
            }
        } else {
            tokenizer = ByteTokenizer()
        }
        // Invalid UTF-8 is refused, not tokenized as U+FFFD (which would print ids of text
        // the user never gave). Swift has already repaired argv's strings; the raw bytes tell.
        var input = text ?? ""
        if text == nil {
            let bytes = try InputFile.readAll(0, limit: Self.maxInputBytes, name: "standard input", what: "tokenize input")
            guard let decoded = String(validating: bytes, as: UTF8.self) else {
                printError("sft-dist: error: standard input: invalid UTF-8"); throw ExitCode(1)
            }
            input = decoded
        } else if input.unicodeScalars.contains("\u{FFFD}"), Self.argvHasInvalidUTF8() {
            printError("sft-dist: error: <text>: invalid UTF-8"); throw ExitCode(1)
        }
        let ids = plain ? tokenizer.encodePlain(input) : tokenizer.encode(input)
        print("[" + ids.map(String.init).joined(separator: ", ") + "]")
    }

    /// Whether a command-line argument's bytes are not valid UTF-8.
    static func argvHasInvalidUTF8() -> Bool {
        (0..<Int(CommandLine.argc)).contains { i in
            guard let p = CommandLine.unsafeArgv[i] else { return false }
            let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self), count: strlen(p))
            return String(validating: bytes, as: UTF8.self) == nil
        }
    }
}
