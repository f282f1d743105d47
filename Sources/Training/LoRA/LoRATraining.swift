import Foundation
import Models
import TensorCore

/// A LoRA run (`--lora-rank r`, Hu et al. 2021, arXiv 2106.09685): the model is built with
/// adapter tensors for the `--lora-targets` modules, and the adapters are the whole trainable
/// set, so the base weights get no weight-gradient GEMM, no optimizer moments and no
/// allreduce (`TrainableSet`); only adapter gradients are summed over ranks.
public enum LoRATraining {
    /// `--lora-targets "q_proj, v_proj"` as names, nil if a name is empty or not a module path.
    public static func targets(_ list: String) -> [String]? {
        if list.trimmingCharacters(in: .whitespaces) == LoRAConfig.allLinear { return [LoRAConfig.allLinear] }
        let names = list.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "_."))
        guard names.allSatisfy({ !$0.isEmpty && $0.unicodeScalars.allSatisfy(allowed.contains) }) else { return nil }
        return names
    }

    /// The recipe's adapter (targets not yet resolved against the model), nil without `--lora-rank`.
    public static func config(_ recipe: Recipe) -> LoRAConfig? {
        guard recipe.loraRank > 0 else { return nil }
        return LoRAConfig(rank: recipe.loraRank, alpha: recipe.loraAlpha, dropout: recipe.loraDropout,
                          targets: recipe.loraTargets?.names ?? [])
    }

    /// The adapters of a LoRA run's model as its trainable set; nil without `--lora-rank`.
    /// `--freeze` / `--trainable` choose among full weights and are refused beside it. A reward
    /// model's new head, `score.weight`, trains whole beside them, as peft's `modules_to_save`
    /// (task_type SEQ_CLS) keeps it: a frozen random head would leave the adapters a random
    /// projection to learn through.
    public static func trainableSet(_ recipe: Recipe, model: LanguageModel) throws -> TrainableSet? {
        guard recipe.loraRank > 0 else { return nil }
        guard let adapted = model as? LoRAAdaptable, adapted.lora != nil else {
            throw ModelError("--lora-rank: LoRA is not supported for this architecture (\(model.configJSON["model_type"] as? String ?? "?"); supported: \(ModelDirectory.supportedModelTypes))")
        }
        try recipe.checkLoRATrainsOnlyAdapters()
        let names = Set(adapted.adapterNames + (model.scoresSequences ? [SequenceScoreHead.weightName] : []))
        return TrainableSet(model.parameters, where: { names.contains($0.name) })
    }

    /// Builds the model of `spec` (a preset or a model directory) with `lora`'s adapters,
    /// initialised as peft does from `seed`; without `lora`, the model as it is.
    /// `rewardPad`: a converted reward model's pad_token_id in place of its tokenizer's (an adapter's own tokenizer's).
    public static func loadModel(_ spec: String, seed: UInt64, lora: LoRAConfig?, use: ModelUse = .training,
                                 kind: ModelKind = .causalLM, rewardPad: Int32? = nil) throws -> (LanguageModel, Tokenizer) {
        guard let lora else { return try RunSetup.loadModel(spec, seed: seed, use: use, kind: kind) }
        let tokenizer = ByteTokenizer()
        let model: LanguageModel
        if var config = try ModelPresets.named(spec, vocabSize: tokenizer.vocabSize) {
            config.scoreHead = kind == .rewardModel
            let resolved = try lora.resolved(for: .gpt2, plan: config.layoutPlan)
            model = GPT2(config: config, seed: seed, lora: resolved)
            (model as! LoRAAdaptable).initializeAdapters(seed: seed)
            return (model, tokenizer)
        }
        let (m, t) = try ModelDirectory.load(spec, lora: lora, use: use, kind: kind, seed: seed, rewardPad: rewardPad)
        guard let adapted = m as? LoRAAdaptable else {
            throw ModelError("--lora-rank: LoRA is not supported for \(spec)'s architecture (supported: \(ModelDirectory.supportedModelTypes))")
        }
        adapted.initializeAdapters(seed: seed)
        return (m, t)
    }
}

extension Trainer {
    /// Whether the run's LoRA adapters drop their inputs in training (`withTrainingNoise`).
    var loraDropoutActive: Bool { ((model as? LoRAAdaptable)?.lora?.dropout ?? 0) > 0 }

    /// Runs `body` (a training forward) with LoRA dropout keyed by each token's sequence in
    /// the step batch and its position (`keys`, made by `withTrainingNoise`), so the masks are the same at
    /// any rank count. The statistics pass (no tape) draws the same masks as the gradient pass
    /// that follows: the objectives that select tokens there (threshold, token-clean,
    /// forgetting, talr's median) select again in the gradient pass and divide by the
    /// statistics pass's count, so both passes must see the same logits.
    func withLoRADropout<T>(keys: [UInt64], _ context: StepContext, _ body: () -> T) -> T {
        guard let adapted = model as? LoRAAdaptable, let lora = adapted.lora, lora.dropout > 0 else { return body() }
        adapted.loraDropout = LoRADropoutContext(probability: Float(lora.dropout),
                                                 salt: DropoutMask.key(context.seed, UInt64(context.step)), rowKeys: keys)
        defer { adapted.loraDropout = nil }
        return body()
    }
}
