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
        try ReplaceableOutput.replace(dir, what: "model") { tmp in
            let config = try JSONSerialization.data(withJSONObject: configJSON(model, tokenizer: tokenizer), options: [.prettyPrinted, .sortedKeys])
            try config.write(to: URL(fileURLWithPath: tmp + "/config.json"))
            let p = model.parameters
            let tensors = p.entries.map { e in
                (name: e.name, shape: e.shape, data: UnsafeBufferPointer(start: p.values + e.offset, count: e.count))
            }
            var meta = metadata
            meta["format"] = "pt"
            try SafeTensorsWriter.write(path: tmp + "/model.safetensors", tensors: tensors, metadata: meta)
            if let byte = tokenizer as? ByteTokenizer { try writeByteTokenizer(byte, to: tmp) }
            try writeTokenizerFiles(tokenizer, model: model, to: tmp, format: format)
            if let g = model.generationConfig ?? chatTurnEnds(tokenizer, format: format) {
                try g.data().write(to: URL(fileURLWithPath: tmp + "/" + GenerationConfig.fileName))
            }
        }
    }

    /// For the byte tokenizer saved in HF format with its ChatML template: `eos_token_id` lists
    /// `<|endoftext|>` and `<|im_end|>`, as Qwen2.5's instruct models do. transformers' `generate`
    /// stops at these ids only; with config.json's `<|endoftext|>` alone, a model trained on chat
    /// turns ran past every `<|im_end|>` to the length limit (sft-dist's own generation stops at
    /// both, `Evaluator.stopIds`). nil otherwise: a BPE model's file is written back as it was read.
    static func chatTurnEnds(_ tokenizer: Tokenizer, format: SaveFormat) -> GenerationConfig? {
        guard format == .hf, let byte = tokenizer as? ByteTokenizer, byte.chatTemplateText == nil else { return nil }
        let ids = [Int(byte.eosId), Int(ByteTokenizer.imEnd)]
        return GenerationConfig(json: ["eos_token_id": ids], eosTokenIds: ids)
    }

    /// Reads `config.json`, builds the architecture it names, and loads every parameter by
    /// its checkpoint key, checking shapes. With `lora`, the model also gets adapter tensors
    /// (checked against its modules, initialised by the caller: the checkpoint has none).
    ///
    /// `kind` is what the caller computes with. A reward model's directory (`SequenceScoreHead`)
    /// is refused as a `.causalLM`; a causal LM's, loaded as a `.rewardModel`, becomes one: its
    /// `lm_head.weight` is left unread and `score.weight` starts from N(0, 0.02) drawn with `seed`;
    /// its pad_token_id is the tokenizer's, or `rewardPad`.
    public static func load(_ dir: String, lora: LoRAConfig? = nil, use: ModelUse = .training,
                            kind: ModelKind = .causalLM, seed: UInt64 = 0, rewardPad: Int32? = nil) throws -> (model: LanguageModel, tokenizer: Tokenizer) {
        try checkIsModel(dir)
        let configPath = dir + "/config.json"
        let json = try JSONObjectFile.read(configPath)
        // As generation_config.json's: an id that is not one (a string, 1.5, -5) was ignored.
        for key in tokenIdFields.sorted() { _ = try GenerationConfig.tokenIds(key, in: json, path: configPath) }
        let tokenizer = try loadTokenizer(dir)
        let generation = try GenerationConfig.read(directory: dir)
        // Nothing is allocated until the config is known to fit in memory and the checkpoint
        // to hold every tensor it needs.
        let saved = try architecture(json, path: configPath)
        if saved.scoreHead && kind == .causalLM {
            let names = (json["architectures"] as? [Any])?.compactMap { $0 as? String }.joined(separator: ", ") ?? "?"
            throw ModelError("\(dir): is a reward model (\(names)), which scores whole sequences; this needs a causal language model (a reward model trains with --objective reward)")
        }
        let converting = kind == .rewardModel && !saved.scoreHead
        // TRL's RewardTrainer sets the new reward model's pad_token_id to the tokenizer's pad,
        // whatever the causal LM's config.json said (a LoRA reward model's base is the causal LM:
        // its rewards are read past that pad as in training).
        var converted = json
        converted["pad_token_id"] = Int(rewardPad ?? tokenizer.padId)
        let arch = converting ? try architecture(converted, path: configPath, scoreHead: true) : saved
        try checkTokenizer(tokenizer, fits: arch.vocabSize, dir: dir)
        let lora = try lora.map { try $0.resolved(for: arch.lora, plan: arch.plan) }
        try ModelMemoryCheck.check(arch.plan, path: configPath, use: use)
        let weights = try SafeTensorsCheckpoint(directory: dir)
        if lora == nil, let adapter = weights.names.first(where: LoRAConfig.isAdapterName) {
            // A LoRA run's checkpoint: loading only its base would silently drop the training.
            throw ModelError("\(dir): holds LoRA adapter tensors (\"\(adapter)\"), a checkpoint of a LoRA run; load a LoRA run's adapter with --model BASE --adapter OUT/model (a checkpoint's: --adapter <checkpoint>/adapter)")
        }
        let newHead: Set<String> = converting ? [SequenceScoreHead.weightName] : []
        var used = Set<String>(converting ? ["lm_head.weight"] : [])
        for (name, shape) in arch.plan.layout where !newHead.contains(name) {
            used.insert(try checkpointName(for: name, shape: shape, in: weights, source: dir))
        }
        let model = arch.build(lora)
        model.generationConfig = generation
        try loadParameters(model.parameters, from: weights, source: dir, skippingAdapters: lora != nil, skipping: newHead)
        try checkEveryTensorIsUsed(weights, used: used, params: model.parameters, source: dir)
        if converting { SequenceScoreHead.initialise(model.parameters, seed: seed) }
        return (model, tokenizer)
    }

    /// Buffers that transformers saved in some checkpoints and recomputes (GPT-2's causal mask,
    /// rotary frequencies): not weights.
    static func isBuffer(_ name: String) -> Bool {
        name.hasSuffix(".attn.bias") || name.hasSuffix(".attn.masked_bias") || name.hasSuffix("rotary_emb.inv_freq")
    }

    /// A checkpoint tensor the config's model has no place for is refused, naming it: loading
    /// would drop it silently (Qwen2 weights under "model_type": "llama" lost their q/k/v
    /// biases; "n_layer": 3 over four layers' weights trained a truncated model). A tied
    /// model's `lm_head.weight` is accepted when it equals the embeddings it is tied to.
    static func checkEveryTensorIsUsed(_ weights: SafeTensorsCheckpoint, used: Set<String>, params: ParameterStore, source: String) throws {
        for name in weights.names where !used.contains(name) && !LoRAConfig.isAdapterName(name) && !isBuffer(name) {
            if name == "lm_head.weight",
               let embedding = params.entries.first(where: { ["transformer.wte.weight", "model.embed_tokens.weight"].contains($0.name) }),
               weights.info(name)?.shape == embedding.shape {
                let head = try weights.floats(name)
                if (0..<embedding.count).allSatisfy({ head[$0] == params.values[embedding.offset + $0] }) { continue }
                throw ModelError("\(source): tensor \"lm_head.weight\" differs from the embeddings \(embedding.name), and config.json ties the two (tie_word_embeddings); untie them in config.json or drop lm_head.weight")
            }
            throw ModelError("\(source): checkpoint tensor \"\(name)\" is not a parameter of the model config.json describes (model_type, layer count, tie_word_embeddings, attention_bias?); loading it would drop the tensor silently")
        }
    }

    /// The `model_type`s sft-dist loads, for messages: gpt2 and the Llama families.
    public static var supportedModelTypes: String {
        (["gpt2"] + LlamaConfig.Family.allCases.map(\.rawValue)).joined(separator: ", ")
    }

    /// What a config.json object describes, before anything is allocated: the parameter layout
    /// by parts, the vocabulary size, and how to build the model.
    /// `scoreHead` overrides the file's choice of head (nil: as config.json says).
    public static func architecture(_ json: [String: Any], path: String, scoreHead: Bool? = nil) throws
        -> (plan: ParameterLayoutPlan, vocabSize: Int, lora: LoRAArchitecture, scoreHead: Bool, build: (LoRAConfig?) -> LanguageModel) {
        let modelType = try HFConfigFields(path: path, object: json).string("model_type")
        switch modelType {
        case "gpt2":
            var config = try GPT2Config(HFConfigFields(path: path, object: json))
            if let scoreHead {
                config.scoreHead = scoreHead
                // A converted causal LM's pad, as parsing a reward model's config.json reads it.
                config.scorePadId = scoreHead ? json["pad_token_id"] as? Int : nil
            }
            return (config.layoutPlan, config.vocabSize, .gpt2, config.scoreHead, { GPT2(config: config, lora: $0) })
        case _ where LlamaConfig.Family(rawValue: modelType) != nil:
            var config = try LlamaConfig(HFConfigFields(path: path, object: json))
            if let scoreHead { config.scoreHead = scoreHead }
            return (config.layoutPlan, config.vocabSize, .llama(modelType), config.scoreHead, { Llama(config: config, extraConfig: json, lora: $0) })
        default:
            throw ModelError("\(path): field \"model_type\" is \(JSONText.brief(modelType)), which is not supported (supported: \(supportedModelTypes))")
        }
    }

    /// A tokenizer with ids past the model's vocabulary: ids no embedding row has.
    public static func checkTokenizer(_ tokenizer: Tokenizer, fits vocabSize: Int, dir: String) throws {
        if tokenizer.vocabSize > vocabSize {
            throw ModelError("\(dir): tokenizer has \(tokenizer.vocabSize) tokens but the model's vocab_size is \(vocabSize)")
        }
    }

    /// Copies every parameter from the checkpoint, accepting names with or without the
    /// `transformer.` prefix (the Hub's gpt2 files omit it). Missing tensors, shape mismatches
    /// and non-finite values (a NaN or Inf weight makes every loss and sample meaningless)
    /// are errors naming the tensor.
    public static func loadParameters(_ params: ParameterStore, from weights: SafeTensorsCheckpoint, source: String,
                                      skippingAdapters: Bool = false, skipping: Set<String> = []) throws {
        for e in params.entries where !(skippingAdapters && LoRAConfig.isAdapterName(e.name)) && !skipping.contains(e.name) {
            let name = try checkpointName(for: e.name, shape: e.shape, in: weights, source: source)
            try weights.read(name, into: params.values + e.offset, count: e.count)
            if let bad = (0..<e.count).first(where: { !params.values[e.offset + $0].isFinite }) {
                let count = (bad..<e.count).reduce(0) { $0 + (params.values[e.offset + $1].isFinite ? 0 : 1) }
                throw ModelError("\(source): tensor \"\(name)\" has \(count) non-finite value\(count == 1 ? "" : "s") (first: \(params.values[e.offset + bad]) at element \(bad))")
            }
            // A finite weight at or above √Float.max overflows the first product it is in: 3e38
            // loaded, and train wrote a run directory before its first loss was non-finite.
            let limit = TrainableSet.usableMagnitude
            if let bad = (0..<e.count).first(where: { !(abs(params.values[e.offset + $0]) < limit) }) {
                let count = (bad..<e.count).reduce(0) { $0 + (abs(params.values[e.offset + $1]) < limit ? 0 : 1) }
                throw ModelError("\(source): tensor \"\(name)\" has \(count) value\(count == 1 ? "" : "s") of magnitude 1.8e19 or more (first: \(params.values[e.offset + bad]) at element \(bad)), where a product overflows float32 (a run that diverged?)")
            }
        }
    }

    /// The checkpoint's name for parameter `name` (with or without `transformer.`), checked
    /// to exist with `shape`.
    static func checkpointName(for name: String, shape: [Int], in weights: SafeTensorsCheckpoint, source: String) throws -> String {
        let candidates = [name, name.hasPrefix("transformer.") ? String(name.dropFirst(12)) : "transformer." + name]
        guard let found = candidates.first(where: { weights.info($0) != nil }), let info = weights.info(found) else {
            throw ModelError("\(source): checkpoint has no tensor \"\(name)\" (is it a checkpoint of this config?)")
        }
        guard info.shape == shape else {
            throw ModelError("\(source): tensor \"\(found)\" has shape \(info.shape) but the config needs \(shape)")
        }
        return found
    }

    /// Who reads a model directory, for `checkIsModel`'s wording: `load` also takes presets and
    /// adapters (with --adapter); `merge` and `export` read saved models only.
    public enum Reader { case load, merge, export }

    /// A directory at `dir`, or the error `checkIsModel` gives for a missing one.
    public static func checkExists(_ dir: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw ModelError("\(dir): no such model directory (or a preset: \(ModelPresets.names.joined(separator: ", ")))")
        }
    }

    /// Throws the message `reader` gives when `dir` is not a directory, or is a LoRA adapter.
    public static func checkIsModel(_ dir: String, for reader: Reader = .load) throws {
        switch reader {
        case .load: try checkExists(dir)
        case .merge, .export:
            // Neither reads a preset (random weights): the message listed `tiny` as accepted.
            let verb = reader == .merge ? "merge" : "export"
            if ModelPresets.isOnlyPreset(dir) {
                throw ModelError("\(dir): a preset, whose weights are random; \(verb) reads saved models, such as a run's OUT/model")
            }
            do { try checkExists(dir) } catch {
                throw ModelError("\(dir): no such model directory (\(verb) reads saved models, such as a run's OUT/model)")
            }
        }
        // A run's OUT or a checkpoint's directory: "config.json: no such file" did not say where the model is.
        if !FileManager.default.fileExists(atPath: dir + "/config.json"), !FileManager.default.fileExists(atPath: dir + "/adapter_config.json"),
           FileManager.default.fileExists(atPath: dir + "/model/config.json") {
            let trimmed = dir.hasSuffix("/") ? String(dir.dropLast()) : dir
            throw ModelError("\(dir): holds no config.json, but its model/ does (a run's or a checkpoint's directory): give \(trimmed)/model")
        }
        if !FileManager.default.fileExists(atPath: dir + "/config.json"), FileManager.default.fileExists(atPath: dir + "/adapter_config.json") {
            switch reader {
            // train has no --adapter: the way on from an adapter is its merged weights.
            case .load: throw ModelError("\(dir) holds a LoRA adapter (adapter_config.json), not a model: eval, score, generate and select take it as --model BASE --adapter \(dir); to train from it, merge it into its base first (sft-dist merge-lora --model BASE --adapter \(dir) --out DIR, then --model DIR)")
            case .merge: throw ModelError("\(dir) holds a LoRA adapter (adapter_config.json), not a model: make full weights first with sft-dist merge-lora --model BASE --adapter \(dir) --out DIR")
            case .export: throw ModelError("\(dir) holds a LoRA adapter (adapter_config.json), not a model: sft-dist merge-lora --model BASE --adapter \(dir) --out DIR writes its full weights in the Hugging Face layout")
            }
        }
    }

    /// `sft_dist_tokenizer.json`: the byte tokenizer's name, and the chat template a run recorded.
    public static func writeByteTokenizer(_ byte: ByteTokenizer, to dir: String) throws {
        var description: [String: Any] = ["type": ByteTokenizer.name]
        if let t = byte.chatTemplateText { description["chat_template"] = t }
        let data = try JSONSerialization.data(withJSONObject: description, options: [.sortedKeys])
        try data.write(to: URL(fileURLWithPath: dir + "/" + byteTokenizerFile))
    }

    public static func loadTokenizer(_ dir: String) throws -> Tokenizer {
        let path = dir + "/" + byteTokenizerFile
        if let obj = try JSONObjectFile.readIfPresent(path) {
            guard obj["type"] as? String == ByteTokenizer.name else {
                throw ModelError("\(path): unknown tokenizer description")
            }
            let template = obj["chat_template"]
            guard template == nil || template is String else { throw ModelError("\(path): field \"chat_template\" must be a string") }
            return ByteTokenizer(chatTemplate: template as? String)
        }
        let hf = dir + "/tokenizer.json"
        var st = stat()
        if lstat(hf, &st) == 0 { return try BPETokenizer(path: hf) }  // whatever it is, BPETokenizer says what is wrong
        throw ModelError("\(dir): no tokenizer found (expected tokenizer.json or \(byteTokenizerFile))")
    }
}
