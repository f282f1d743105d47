import Foundation

extension ModelDirectory {
    /// What `save` writes besides config.json and model.safetensors (float32, HF tensor names).
    public enum SaveFormat: String, Sendable, CaseIterable {
        /// sft-dist's own layout: the byte tokenizer as a one-line marker file.
        case native
        /// Everything transformers' `from_pretrained` needs as it is: also an equivalent
        /// tokenizer.json / tokenizer_config.json for the byte tokenizer.
        case hf
    }

    /// Tokenizer files of a BPE tokenizer (the files it came from) in either format; the byte
    /// tokenizer's generated HF files only in `.hf`.
    public static func writeTokenizerFiles(_ tokenizer: Tokenizer, model: LanguageModel, to dir: String,
                                    format: SaveFormat) throws {
        if tokenizer is ByteTokenizer && format == .native { return }
        for (name, data) in try HFTokenizerFiles.files(for: tokenizer, contextLength: model.maxSequenceLength) {
            try data.write(to: URL(fileURLWithPath: dir + "/" + name))
        }
    }

    /// `sft-dist export`: loads `source` (any directory `load` accepts: HF gpt2/llama/qwen2/qwen3/
    /// mistral, single-file or sharded, any float dtype) and writes it to `destination` in the
    /// HF layout with float32 weights. Returns a one-line description.
    @discardableResult
    public static func export(from source: String, to destination: String) throws -> String {
        let standardized = { (p: String) in URL(fileURLWithPath: p).standardizedFileURL.path }
        if standardized(source) == standardized(destination) {
            throw ModelError("\(destination): export needs a different output directory than the model it reads")
        }
        try checkIsModel(source, for: .export)
        let (model, tokenizer) = try load(source, use: .inference, kind: savedKind(source))
        try save(model, tokenizer: tokenizer, to: destination, metadata: ["sft_dist_exported_from": source], format: .hf)
        let type = model.configJSON["model_type"] as? String ?? "?"
        return "exported \(type) (\(model.parameters.parameterCount) parameters, float32) and its tokenizer to \(destination)"
    }
}
