@testable import Training

/// Every training example as a rollout of the step, with a given advantage per sequence and the
/// sampler's log-prob of each token (token-aligned with the example's ids): what a rollout
/// objective sees from `RolloutProducer`, without sampling.
final class FixedRolloutProducer: StepProducer {
    let name = "fixed-rollouts"
    let examples: [Example]
    let advantages: [Float]
    let behaviour: [[Float]]
    init(examples: [Example], advantages: [Float], behaviour: [[Float]]) {
        precondition(examples.count == advantages.count && examples.count == behaviour.count)
        self.examples = examples; self.advantages = advantages; self.behaviour = behaviour
    }
    func prepare(_ p: StepPreparation) -> StepBatch {
        StepBatch(step: p.step, sequences: examples.indices.map { e in
            var s = StepSequence(example: e, origin: .rollout, ids: examples[e].ids, lossMask: examples[e].lossMask,
                                 promptLength: examples[e].promptLength)
            s.advantage = advantages[e]; s.behaviourLogProbs = behaviour[e]; s.group = e / 2
            return s
        })
    }
    var state: [UInt64] { [] }
    func restore(_ state: [UInt64]) throws {}
}
