import Foundation
import Models
import TensorCore

/// A LoRA adapter on disk in peft's format, so `PeftModel.from_pretrained(base, dir)` loads it
/// as it is (peft `save_pretrained`): `adapter_config.json` (peft_type LORA, r, lora_alpha,
/// target_modules, fan_in_fan_out — true for GPT-2's Conv1D, base_model_name_or_path…) and
/// `adapter_model.safetensors` with peft's tensor names: the module path prefixed
/// `base_model.model.`, A [r, in] and B [out, r] (`…c_attn.lora_A.weight`).
///
/// A reward model's adapter (`--objective reward --lora-rank r`) is peft's task_type `SEQ_CLS`:
/// `modules_to_save` ["classifier", "score"], the trained head saved whole as
/// `base_model.model.score.weight`; its base is the causal LM (`AutoModelForSequenceClassification`
/// on it, num_labels=1, then `PeftModel.from_pretrained`), and its rewards are read past the
/// tokenizer's pad, as TRL's RewardTrainer sets `pad_token_id` (peft's files do not record it).
///
/// peft loads adapter weights with `strict=False`, so a wrong name would give an adapter that
/// silently does nothing; reading here is strict instead: every tensor the config implies must
/// be there with its shape, and nothing else.
public enum AdapterDirectory {
    public static let configFile = "adapter_config.json"
    public static let weightsFile = "adapter_model.safetensors"
    static let prefix = "base_model.model."

    /// Writes `model`'s adapters into `<dir>.tmp-<pid>` and renames it over `dir`. The
    /// `tokenizer` is written beside them (a BPE one's files, or sft_dist_tokenizer.json), as TRL's trainer saves its tokenizer with the adapter:
    /// it carries the chat template the run trained with (`ChatTemplateRecord`), which
    /// `--adapter DIR` and `merge-lora` then read instead of the base's.
    public static func save(_ model: LoRAAdaptable, base: String, to dir: String, tokenizer: Tokenizer? = nil,
                            metadata: [String: String] = [:]) throws {
        guard let lora = model.lora else { throw OutputError("\(dir): the model has no LoRA adapters to save") }
        let scores = model.scoresSequences
        try ReplaceableOutput.replace(dir, what: "the adapter") { tmp in
            let config: [String: Any] = [
                "peft_type": "LORA", "task_type": scores ? "SEQ_CLS" : "CAUSAL_LM", "r": lora.rank, "lora_alpha": lora.alpha,
                "lora_dropout": lora.dropout, "target_modules": lora.targets,
                "fan_in_fan_out": type(of: model).loraArchitecture.fanInFanOut, "bias": "none",
                "use_rslora": false, "use_dora": false, "inference_mode": true, "init_lora_weights": true,
                "modules_to_save": scores ? savedModules : NSNull(), "layers_to_transform": NSNull(), "layers_pattern": NSNull(),
                "rank_pattern": [String: Any](), "alpha_pattern": [String: Any](),
                "base_model_name_or_path": base, "revision": NSNull()]
            let json = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
            try json.write(to: URL(fileURLWithPath: tmp + "/" + configFile))
            let p = model.parameters
            let tensors = p.entries.filter { isSaved($0.name, scores: scores) }.map { e in
                (name: prefix + e.name, shape: e.shape, data: UnsafeBufferPointer(start: p.values + e.offset, count: e.count))
            }
            try SafeTensorsWriter.write(path: tmp + "/" + weightsFile, tensors: tensors,
                                        metadata: metadata.merging(["format": "pt"]) { $1 })
            if let bpe = tokenizer as? BPETokenizer {
                try ModelDirectory.writeTokenizerFiles(bpe, model: model, to: tmp, format: .hf)
            }
            // The byte tokenizer's own file: it carries a template the run recorded (plain).
            if let byte = tokenizer as? ByteTokenizer { try ModelDirectory.writeByteTokenizer(byte, to: tmp) }
        }
    }

    /// peft's `modules_to_save` for task_type SEQ_CLS (`PeftModelForSequenceClassification`
    /// adds both names; the score head is transformers' `score`).
    static let savedModules = ["classifier", "score"]

    /// The tensors an adapter file holds: the adapters, and a reward model's head.
    static func isSaved(_ name: String, scores: Bool) -> Bool {
        LoRAConfig.isAdapterName(name) || (scores && name == SequenceScoreHead.weightName)
    }

    /// The adapter described by `dir/adapter_config.json`, its `fan_in_fan_out`, and whether it
    /// is a reward model's (task_type SEQ_CLS). Options that would make peft compute something
    /// else (rsLoRA, DoRA, trained biases, other saved modules, per-layer ranks) are refused
    /// naming the field.
    public static func readConfig(_ dir: String) throws -> (lora: LoRAConfig, fanInFanOut: Bool, scoresSequences: Bool) {
        let f = try HFConfigFields(path: dir + "/" + configFile)
        let type = try f.string("peft_type")
        guard type == "LORA" else { throw f.error("peft_type", "is \(JSONText.brief(type)); only LORA adapters are supported") }
        for flag in ["use_rslora", "use_dora", "use_qalora", "lora_bias"] where try f.bool(flag, default: false) {
            throw f.error(flag, "must be false")
        }
        // PiSSA, OLoRA, CorDA and LoftQ start from a changed base: peft re-derives it as it loads
        // the adapter (W - s·B₀A₀), and adding B·A to the unchanged base scored other numbers.
        // EVA and the random ones only start A and B: the saved tensors are the whole adapter.
        if let initial = f.object["init_lora_weights"], !(initial is NSNull) {
            let plain = HFConfigFields.isBool(initial) || ["gaussian", "orthogonal", "eva"].contains(initial as? String ?? "")
            guard plain else {
                throw f.error("init_lora_weights", "is \(HFConfigFields.describe(initial)): an adapter whose initialisation changes the base weights as peft loads it (PiSSA, OLoRA, CorDA, LoftQ) is not supported; true, false, \"gaussian\", \"orthogonal\" and \"eva\" are")
            }
        }
        let bias = try f.string("bias", default: "none")
        guard bias == "none" else { throw f.error("bias", "must be \"none\", got \(JSONText.brief(bias))") }
        // peft writes null without a task; an adapter that saves the score head is a reward model's.
        let task = f.has("task_type") ? try f.string("task_type") : nil
        guard task == nil || task == "CAUSAL_LM" || task == "SEQ_CLS" else {
            throw f.error("task_type", "is \(JSONText.brief(task!)); an adapter of a causal LM (CAUSAL_LM) or a reward model (SEQ_CLS) is supported")
        }
        let scores = task == "SEQ_CLS" || (task == nil && (f.object["modules_to_save"] as? [String])?.contains("score") == true)
        if scores, f.has("modules_to_save") {
            guard let modules = f.object["modules_to_save"] as? [String], modules.contains("score"), Set(modules).isSubset(of: savedModules) else {
                throw f.error("modules_to_save", "must be null or list \"score\" and at most \"classifier\" beside it (a reward model's head)")
            }
        }
        for field in (scores ? [] : ["modules_to_save"]) + ["layers_to_transform", "layers_pattern", "exclude_modules", "target_parameters", "layer_replication",
                      "trainable_token_indices", "alora_invocation_tokens"] where f.has(field) {
            throw f.error(field, "must be null (not supported)")
        }
        for field in ["rank_pattern", "alpha_pattern"] where !(try f.objectField(field) ?? [:]).isEmpty {
            throw f.error(field, "must be empty (one rank and α for every module)")
        }
        let rank = try f.positiveInt("r")
        let alpha = try f.double("lora_alpha")
        // The range --lora-alpha takes (recipe key lora_alpha): 1e18 merged into weights of 1e14.
        guard alpha > 0, alpha <= LoRAConfig.maxAlpha else { throw f.error("lora_alpha", "must be a number in (0, \(LoRAConfig.maxAlpha)], got \(alpha)") }
        guard let targets = f.object["target_modules"] as? [String], !targets.isEmpty, targets.allSatisfy({ LoRATraining.targets($0) != nil }) else {
            throw f.error("target_modules", "must be a non-empty list of module names (a regular expression is not supported)")
        }
        let dropout = try f.double("lora_dropout", default: 0)
        // As --lora-dropout (and peft's LoraConfig): a probability; -1 and 5 were read as given.
        guard dropout >= 0 && dropout < 1 else { throw f.error("lora_dropout", "must be in [0, 1), got \(dropout)") }
        return (LoRAConfig(rank: rank, alpha: alpha, dropout: dropout, targets: targets), try f.bool("fan_in_fan_out", default: false), scores)
    }

    /// `--model SPEC [--adapter DIR]` of eval, score and generate.
    public static func loadModel(_ spec: String, adapter: String?, rewardModels: Bool = false) throws -> (LanguageModel, Tokenizer) {
        guard let adapter else { return try RunSetup.loadModel(spec, seed: 0, use: .inference) }
        return try loadModel(base: spec, adapter: adapter, rewardModels: rewardModels)
    }

    /// `--model BASE --adapter DIR`: the base with the adapter's tensors, strictly by name.
    /// `rewardModels`: the caller reads a reward model's adapter (score, merge-lora); the others
    /// need a causal LM's.
    public static func loadModel(base: String, adapter dir: String, rewardModels: Bool = false) throws -> (LanguageModel, Tokenizer) {
        let (lora, _, scores) = try readConfig(dir)
        if scores && !rewardModels {
            throw ModelError("\(dir): holds a reward model's adapter (task_type SEQ_CLS, or modules_to_save with score), which scores whole sequences; this needs a causal language model's (sft-dist score prints its rewards, merge-lora writes the whole reward model)")
        }
        // A preset's weights are random, drawn from the training run's seed, which the adapter
        // does not record: loading one here gave another base than the adapter trained on, and
        // merges and scores that were silently wrong. The run saved that base as OUT/model-base.
        if ModelPresets.isOnlyPreset(base) {
            throw ModelError("--model \(base) is a preset, whose random weights depend on the seed of the run that trained the adapter: give that run's base, OUT/model-base (written beside OUT/model), as --model")
        }
        let (model, tokenizer): (LanguageModel, Tokenizer)
        do {
            // A reward model's rewards are read past its tokenizer's pad, as TRL sets pad_token_id
            // from the tokenizer it trained (and saved) with: the adapter's, when it has one.
            let rewardPad = scores ? try savedTokenizer(dir)?.padId : nil
            (model, tokenizer) = try LoRATraining.loadModel(base, seed: 0, lora: lora, use: .inference, kind: scores ? .rewardModel : .causalLM,
                                                            rewardPad: rewardPad)
        } catch let e as UnknownLoRATarget {
            // The targets came from the adapter's config, not from a flag the user gave.
            let hint = e.onlyLayers == nil ? " (an adapter made for another model than \(base)?)" : ""
            throw ModelError(e.described(as: "\(dir)/\(configFile): target_modules") + hint)
        }
        // peft's pickled format (safe_serialization=False): "cannot open adapter_model.safetensors" said nothing of it.
        if !FileManager.default.fileExists(atPath: dir + "/" + weightsFile), FileManager.default.fileExists(atPath: dir + "/adapter_model.bin") {
            throw ModelError("\(dir)/adapter_model.bin: peft's pickle format is not read; save the adapter as safetensors (peft's default, safe_serialization=True) to get \(weightsFile)")
        }
        try loadWeights(into: model.parameters, from: dir + "/" + weightsFile, base: base)
        // The tokenizer saved with the adapter: the base's, with the chat template it trained with.
        if FileManager.default.fileExists(atPath: dir + "/tokenizer.json") {
            if tokenizer is ByteTokenizer {
                throw ModelError("\(dir): holds a tokenizer.json, but \(base) has sft-dist's byte tokenizer (an adapter made for another model?)")
            }
            let own = try ModelDirectory.loadTokenizer(dir)
            if let difference = vocabularyDifference(own, tokenizer) {
                throw ModelError("\(dir): its tokenizer differs from \(base)'s (\(difference)); an adapter's tokenizer must be its base's but for the chat template and end token (an adapter made for another model?)")
            }
            return (model, own)
        }
        if FileManager.default.fileExists(atPath: dir + "/" + ModelDirectory.byteTokenizerFile) {
            guard tokenizer is ByteTokenizer else {
                throw ModelError("\(dir): holds sft-dist's byte tokenizer (\(ModelDirectory.byteTokenizerFile)), but \(base) has a BPE tokenizer (an adapter made for another model?)")
            }
            return (model, try ModelDirectory.loadTokenizer(dir))
        }
        return (model, tokenizer)
    }

    /// A `fan_in_fan_out` that does not match how `base` stores its weights: peft sets it from
    /// the layer as it loads the adapter, with a warning (true on an nn.Linear is read as false,
    /// false on GPT-2's Conv1D as true), and the saved tensors are the same either way
    /// (lora_A [r, in], lora_B [out, r]); so the adapter is read as peft reads it, and said.
    public static func fanInFanOutNote(adapter dir: String, base: String, model: LanguageModel) -> String? {
        guard let adapted = model as? LoRAAdaptable, let recorded = try? readConfig(dir).fanInFanOut else { return nil }
        let conv1D = type(of: adapted).loraArchitecture.fanInFanOut
        guard recorded != conv1D else { return nil }
        return "\(dir)/\(configFile): field \"fan_in_fan_out\" is \(recorded), but \(base) stores its weights \(conv1D ? "as Conv1D" : "as nn.Linear"): read as \(conv1D), as peft does (it sets the field from the layer, with a warning)"
    }

    /// The tokenizer saved with an adapter (tokenizer.json or sft-dist's byte tokenizer's file), nil without one.
    static func savedTokenizer(_ dir: String) throws -> Tokenizer? {
        let fm = FileManager.default
        guard fm.fileExists(atPath: dir + "/tokenizer.json") || fm.fileExists(atPath: dir + "/" + ModelDirectory.byteTokenizerFile) else { return nil }
        return try ModelDirectory.loadTokenizer(dir)
    }

    /// How an adapter's tokenizer differs from its base's in what would change the ids — the
    /// vocabulary size, the special tokens, the encoding of a probe text — or nil. The files
    /// themselves may differ (another transformers version wrote them; TRL's chat set-up
    /// changes `eos_token` and the template).
    static func vocabularyDifference(_ own: Tokenizer, _ base: Tokenizer) -> String? {
        if own.vocabSize != base.vocabSize { return "\(own.vocabSize) tokens, not \(base.vocabSize)" }
        if own.specialTokens != base.specialTokens { return "other special tokens" }
        let probe = "Hello, world! 123 4567 — naïve café, 日本語 テキスト\n\t  code(x) { return x * 2 }"
        if own.encodePlain(probe) != base.encodePlain(probe) { return "a probe text encodes to other ids" }
        // Every id's piece too: two ids swapped in the vocabulary (same size, same specials) may
        // not occur in the probe, and a reference model read other token sequences with exit 0.
        // The vocabulary's own piece, not the decoded text: a byte-level token of one byte
        // past 0x7F (the piece "§" is the byte 0xA7) decodes alone to U+FFFD, as any such byte.
        if let id = (0..<own.vocabSize).first(where: { piece(own, Int32($0)) != piece(base, Int32($0)) }) {
            return "token id \(id) is \(JSONText.brief(piece(own, Int32(id)))) in one and \(JSONText.brief(piece(base, Int32(id)))) in the other"
        }
        return nil
    }

    /// Token `id` as its vocabulary writes it (a BPE tokenizer's byte-level piece), else its text.
    static func piece(_ t: Tokenizer, _ id: Int32) -> String {
        (t as? BPETokenizer)?.token(id) ?? t.decode([id])
    }

    /// Reads every adapter tensor of `params` from `path` (peft's names), refusing a missing
    /// tensor, a wrong shape, a tensor the model has no place for, and non-finite values. A
    /// shape whose rank is right but whose features are not is an adapter of another model
    /// than `base` (a Llama adapter on Qwen2 had only the shapes to say so).
    static func loadWeights(into params: ParameterStore, from path: String, base: String) throws {
        let file = try SafeTensorsCheckpoint(file: path)
        let scores = params.entry(SequenceScoreHead.weightName) != nil
        let expected = params.entries.filter { isSaved($0.name, scores: scores) }
        let names = Set(expected.map { prefix + $0.name })
        if let extra = file.names.first(where: { !names.contains($0) }) {
            throw ModelError("\(path): tensor \"\(extra)\" is not an adapter of this model (expected names like \"\(expected.first.map { prefix + $0.name } ?? "")\")")
        }
        for e in expected {
            let name = prefix + e.name
            guard let info = file.info(name) else { throw ModelError("\(path): no tensor \"\(name)\"") }
            guard info.shape == e.shape else {
                // lora_A is [r, in], lora_B [out, r].
                let rankAxis = e.name.hasSuffix(".lora_A.weight") ? 0 : 1
                let sameRank = info.shape.count == 2 && info.shape[rankAxis] == e.shape[rankAxis]
                throw ModelError("\(path): tensor \"\(name)\" has shape \(info.shape), the model needs \(e.shape)"
                                 + (sameRank ? " (an adapter made for another model than \(base)?)" : ""))
            }
            try file.read(name, into: params.values + e.offset, count: e.count)
            if (0..<e.count).contains(where: { !params.values[e.offset + $0].isFinite }) {
                throw ModelError("\(path): tensor \"\(name)\" has non-finite values")
            }
        }
    }
}
