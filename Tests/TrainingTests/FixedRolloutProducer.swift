@testable import Training

/// Every training example as a rollout of the step, with a given advantage per sequence and the
/// sampler's log-prob of each token (token-aligned with the example's ids): what a rollout
/// objective sees from `RolloutProducer`, without sampling.
final class FixedRolloutProducer: StepProducer {
    let name = "fixed-rollouts"
    let examples: [Example]
    let advantages: [Float]
    let behaviour: [[Float]]
    /// Per sequence; demonstrations (for mixing objectives) carry no behaviour log-probs.
    let origins: [SequenceOrigin]
    /// Per sequence, the verifier's reward (SRFT's y+ / y−); none when empty.
    let rewards: [Float]
    /// `StepBatch.lossTokensPerStep`: the batch as one step of a longer generation.
    var lossTokensPerStep: Double? = nil
    /// `StepBatch.onPolicy`: the batch as a generation's first step, sampled by the current weights.
    var onPolicy = false
    init(examples: [Example], advantages: [Float], behaviour: [[Float]], origins: [SequenceOrigin]? = nil, rewards: [Float] = []) {
        precondition(examples.count == advantages.count && examples.count == behaviour.count)
        self.examples = examples; self.advantages = advantages; self.behaviour = behaviour
        self.origins = origins ?? examples.map { _ in .rollout }
        self.rewards = rewards
    }
    func prepare(_ p: StepPreparation) -> StepBatch {
        var batch = StepBatch(step: p.step, sequences: examples.indices.map { e in
            var s = StepSequence(example: e, origin: origins[e], ids: examples[e].ids, lossMask: examples[e].lossMask,
                                 promptLength: examples[e].promptLength)
            s.advantage = advantages[e]; s.group = e / 2
            if !rewards.isEmpty { s.rewards = [rewards[e]] }
            if origins[e] != .demonstration { s.behaviourLogProbs = behaviour[e] }
            return s
        })
        batch.lossTokensPerStep = lossTokensPerStep
        batch.onPolicy = onPolicy
        return batch
    }
    var state: [UInt64] { [] }
    func restore(_ state: [UInt64]) throws {}
}
