import Foundation
import TensorCore

/// A model on disk in the Hugging Face layout: `config.json` + `model.safetensors` (or
/// shards) + tokenizer files. sft-dist's own byte tokenizer is recorded in
/// `sft_dist_tokenizer.json`, so a trained model reloads with the tokenizer it was trained with.
public enum ModelDirectory {
    public static let byteTokenizerFile = "sft_dist_tokenizer.json"

    /// Writes into `<dir>.tmp-<pid>` and renames over `dir`, so a reader never sees a
    /// half-written model: either the previous one or the new one.
    /// `format: .hf` also writes Hugging Face tokenizer files for the byte tokenizer (see
    /// `HFTokenizerFiles`); a BPE tokenizer's files are written back in either format.
    public static func save(_ model: LanguageModel, tokenizer: Tokenizer, to dir: String,
                            metadata: [String: String] = [:], format: SaveFormat = .native) throws {
        let fm = FileManager.default
        let tmp = dir + ".tmp-\(getpid())"
        try? fm.removeItem(atPath: tmp)
        do {
            try fm.createDirectory(atPath: tmp, withIntermediateDirectories: true)
            let config = try JSONSerialization.data(withJSONObject: model.configJSON, options: [.prettyPrinted, .sortedKeys])
            try config.write(to: URL(fileURLWithPath: tmp + "/config.json"))
            let p = model.parameters
            let tensors = p.entries.map { e in
                (name: e.name, shape: e.shape, data: UnsafeBufferPointer(start: p.values + e.offset, count: e.count))
            }
            var meta = metadata
            meta["format"] = "pt"
            try SafeTensorsWriter.write(path: tmp + "/model.safetensors", tensors: tensors, metadata: meta)
            if tokenizer is ByteTokenizer {
                let tok = try JSONSerialization.data(withJSONObject: ["type": ByteTokenizer.name], options: [.sortedKeys])
                try tok.write(to: URL(fileURLWithPath: tmp + "/" + byteTokenizerFile))
            }
            try writeTokenizerFiles(tokenizer, model: model, to: tmp, format: format)
            if fm.fileExists(atPath: dir) { try fm.removeItem(atPath: dir) }
            try fm.moveItem(atPath: tmp, toPath: dir)
        } catch {
            try? fm.removeItem(atPath: tmp)
            throw OutputError("\(dir): cannot save model (\(MessageText.reason(error, for: dir)))")
        }
    }

    /// Reads `config.json`, builds the architecture it names, and loads every parameter by
    /// its checkpoint key, checking shapes.
    public static func load(_ dir: String) throws -> (model: LanguageModel, tokenizer: Tokenizer) {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw ModelError("\(dir): no such model directory (or a preset: \(ModelPresets.names.joined(separator: ", ")))")
        }
        let configPath = dir + "/config.json"
        guard let data = fm.contents(atPath: configPath) else { throw ModelError("\(configPath): missing") }
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ModelError("\(configPath): not a JSON object")
        }
        let tokenizer = try loadTokenizer(dir)
        let modelType = json["model_type"] as? String ?? "?"
        let model: LanguageModel
        switch modelType {
        case "gpt2":
            model = GPT2(config: try GPT2Config(HFConfigFields(path: configPath, object: json)))
        case "llama", "qwen2", "mistral":
            model = Llama(config: try LlamaConfig(HFConfigFields(path: configPath, object: json)), extraConfig: json)
        default:
            throw ModelError("\(configPath): field \"model_type\" is \"\(modelType)\", which is not supported (supported: gpt2, llama, qwen2, mistral)")
        }
        if tokenizer.vocabSize > model.vocabSize {
            throw ModelError("\(dir): tokenizer has \(tokenizer.vocabSize) tokens but the model's vocab_size is \(model.vocabSize)")
        }
        let weights = try SafeTensorsCheckpoint(directory: dir)
        try loadParameters(model.parameters, from: weights, source: dir)
        return (model, tokenizer)
    }

    /// Copies every parameter from the checkpoint, accepting names with or without the
    /// `transformer.` prefix (the Hub's gpt2 files omit it). Missing tensors and shape
    /// mismatches are errors naming the tensor.
    public static func loadParameters(_ params: ParameterStore, from weights: SafeTensorsCheckpoint, source: String) throws {
        for e in params.entries {
            let candidates = [e.name, e.name.hasPrefix("transformer.") ? String(e.name.dropFirst(12)) : "transformer." + e.name]
            guard let name = candidates.first(where: { weights.info($0) != nil }), let info = weights.info(name) else {
                throw ModelError("\(source): checkpoint has no tensor \"\(e.name)\" (is it a checkpoint of this config?)")
            }
            guard info.shape == e.shape else {
                throw ModelError("\(source): tensor \"\(name)\" has shape \(info.shape) but the config needs \(e.shape)")
            }
            try weights.read(name, into: params.values + e.offset, count: e.count)
        }
    }

    static func loadTokenizer(_ dir: String) throws -> Tokenizer {
        let path = dir + "/" + byteTokenizerFile
        if let data = FileManager.default.contents(atPath: path) {
            guard let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
                  obj["type"] as? String == ByteTokenizer.name else {
                throw ModelError("\(path): unknown tokenizer description")
            }
            return ByteTokenizer()
        }
        let hf = dir + "/tokenizer.json"
        if FileManager.default.fileExists(atPath: hf) { return try BPETokenizer(path: hf) }
        throw ModelError("\(dir): no tokenizer found (expected tokenizer.json or \(byteTokenizerFile))")
    }
}
