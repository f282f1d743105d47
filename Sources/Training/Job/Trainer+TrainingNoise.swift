import Models
import TensorCore

extension Trainer {
    /// Runs `body` (a training forward: the statistics pass or the gradient pass) with the
    /// run's training-time randomness — LoRA's dropout masks and NEFTune's embedding noise —
    /// each keyed by the token's sequence in the step batch and its position, so both are the
    /// same at any rank count, micro-batch size or packing, and both passes of a step see the
    /// same logits. Evaluation, reference and snapshot forwards run without either.
    func withTrainingNoise<T>(_ mb: MicroBatch, _ context: StepContext, _ body: () -> T) -> T {
        let neftune = setup.recipe.neftuneNoiseAlpha > 0 && model is NoisyEmbeddings
        guard neftune || loraDropoutActive else { return body() }
        let (seqId, _) = sequenceIdentities(mb)
        let keys = (0..<mb.inputs.count).map {
            DropoutMask.key(UInt64(bitPattern: Int64(seqId[$0])), UInt64(bitPattern: Int64(mb.positions[$0])))
        }
        return withLoRADropout(keys: keys, context) { neftune ? withEmbeddingNoise(seqId: seqId, keys: keys, context, body) : body() }
    }

    /// NEFTune (arXiv 2310.05914, Algorithm 1; Models/NEFTune.swift) with `neftune_noise_alpha`
    /// α > 0: each token's embedding gets (α/√(L·d))·U(−1, 1), L its sequence's length (its
    /// input positions and the last token, which is only a target: `input_ids`' length).
    func withEmbeddingNoise<T>(seqId: [Int32], keys: [UInt64], _ context: StepContext, _ body: () -> T) -> T {
        guard let noisy = model as? NoisyEmbeddings else { return body() }
        var inputs: [Int32: Int] = [:]
        for id in seqId where id >= 0 { inputs[id, default: 0] += 1 }
        noisy.embeddingNoise = NEFTuneNoise(alpha: setup.recipe.neftuneNoiseAlpha, salt: Self.neftuneSalt(seed: context.seed, step: context.step),
                                            rowKeys: keys, sequenceLengths: seqId.map { $0 >= 0 ? inputs[$0]! + 1 : 0 })
        defer { noisy.embeddingNoise = nil }
        return body()
    }

    /// The step's noise salt: the seed and step, then a tag ("NEFT") so the noise's streams
    /// are not LoRA dropout's, which key the same rows from the same seed and step.
    static func neftuneSalt(seed: UInt64, step: Int) -> UInt64 {
        DropoutMask.key(DropoutMask.key(seed, UInt64(step)), 0x4E45_4654)
    }
}
