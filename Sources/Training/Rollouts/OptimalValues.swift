import Distributed
import Foundation
import Models
import TensorCore

/// A*-PO's first stage (Brantley et al., arXiv 2505.20686, §3.1, Eq. 4), as TRL 1.16's
/// `A2POTrainer._estimate_optimal_values` runs it before the first step: `num_value_samples`
/// (N) completions of every training and evaluation prompt from the reference policy, sampled
/// as the rollouts are (temperature, top-p, top-k, max_completion_length), scored by the reward
/// functions, give each prompt's optimal value
///
///   V*(x) = β1·log((1/N)·Σ_i exp(r(x, y_i)/β1))     (a log-sum-exp, in Double; kept in float32),
///
/// r the weighted reward Σ w·r. With `filter_all_incorrect` (TRL's default) the training prompts
/// whose N rewards sum to 0 leave the run (no learning signal, as TRL filters its dataset);
/// evaluation prompts all stay. Sample i of the pass draws from stream (seed, i): the values are
/// the same for any rank count. They are checkpointed (`optimal_values`), so a resumed run
/// neither samples again nor depends on the reference's sampling then.
public final class OptimalValues: StatefulComponent {
    public let stateName = "optimal_values"
    public let samples: Int, beta1: Double, filterAllIncorrect: Bool
    /// V* of the producer's training prompts (all of them, before filtering) and of its
    /// evaluation prompts; nil until estimated or restored.
    public private(set) var training: [Float]?, evaluation: [Float]?
    /// The training prompts' values came from a checkpoint (the held-out ones too unless their
    /// number changed: `restoreState`).
    public private(set) var restored = false
    /// Training prompts whose samples all scored 0 (left out under filter_all_incorrect).
    public private(set) var allIncorrect: [Int] = []
    weak var producer: RolloutProducer?

    init(objective: A2POObjective, producer: RolloutProducer) {
        samples = objective.valueSamples; beta1 = objective.beta1; filterAllIncorrect = objective.filterAllIncorrect
        self.producer = producer
    }

    public var ready: Bool { training != nil && evaluation != nil }

    /// β1·(log Σ_i exp(r_i/β1) − log N), the maximum taken out first.
    static func value(_ rewards: ArraySlice<Double>, beta1: Double) -> Double {
        let scaled = rewards.map { $0 / beta1 }, top = scaled.max() ?? 0
        return beta1 * (top + log(scaled.reduce(0) { $0 + exp($1 - top) }) - log(Double(rewards.count)))
    }

    /// TRL's rule for a prompt with no learning signal: its samples' rewards sum to 0.
    static func allIncorrect(_ rewards: ArraySlice<Double>) -> Bool { rewards.reduce(0, +) == 0 }

    /// Stage 1 (collective): V* of every training and evaluation prompt of the producer from the
    /// reference's samples, then `apply`. `progress` gets (done, total) samples on every rank.
    func estimate(reference: LanguageModel, comm: Communicator, tokenizer: Tokenizer, seed: UInt64, microBatchSize: Int,
                  progress: ((Int, Int) -> Void)? = nil, stop: (() -> Bool)? = nil) throws(ScoringStopped) {
        guard let producer else { preconditionFailure("optimal values without their producer") }
        let p = StepPreparation(step: 0, comm: comm, model: reference, examples: [], tokenizer: tokenizer, seed: seed, microBatchSize: microBatchSize)
        // A resumed run whose checkpoint holds the training prompts' values but another number
        // of held-out prompts (eval_examples may change on resume) samples the held-out ones only.
        let pools = [training == nil ? producer.allPrompts : [], producer.evaluationPrompts]
        let total = pools.reduce(0) { $0 + $1.count } * samples
        var done = 0, values: [[Float]] = [], incorrect: [Int] = []
        for (k, pool) in pools.enumerated() {
            var rewards: [Double] = []
            // Chunks of whole prompts, about 256 samples per rank each; sample j of prompt i of
            // pool k draws from stream (seed, offset + i·N + j), the pools' streams apart.
            let perChunk = max(1, 256 * comm.size / samples)
            for start in stride(from: 0, to: pool.count, by: perChunk) {
                let chosen = Array(start..<min(start + perChunk, pool.count))
                let offset = (k == 0 ? 0 : producer.allPrompts.count * samples) + start * samples
                rewards += producer.sampleAndScore(chosen, of: pool, samples: samples, streamOffset: offset, p)
                done += chosen.count * samples
                progress?(done, total)
                // A stop signal every rank agreed on (`stop`, collective) ends stage 1 between chunks.
                FaultInjection.raiseStopSignal(scoringRound: start / perChunk + 1, rank: comm.rank, size: comm.size)
                if done < total, let stop, stop() { throw ScoringStopped(what: "a2po stage 1, reference samples scored", done: done, total: total) }
            }
            values.append(pool.indices.map { i in Float(Self.value(rewards[(i * samples)..<((i + 1) * samples)], beta1: beta1)) })
            if k == 0 { incorrect = pool.indices.filter { i in Self.allIncorrect(rewards[(i * samples)..<((i + 1) * samples)]) } }
        }
        if training == nil { training = values[0]; allIncorrect = incorrect }
        evaluation = values[1]
        apply()
    }

    /// The values onto the producer's prompts, and the training prompts filtered.
    func apply() {
        guard let producer, let training, let evaluation else { return }
        producer.useOptimalValues(training: training, evaluation: evaluation, leaving: filterAllIncorrect ? allIncorrect : [])
    }

    public func saveState() -> ComponentState {
        guard let training else { preconditionFailure("optimal values saved before they were estimated") }
        // (The held-out values are pending only between a restore that found another number of
        // them and the next stage 1, when the checkpointer reads the restored values back.)
        let evaluation = self.evaluation ?? []
        return ComponentState(values: ["all_incorrect": .ints(allIncorrect)],
                              tensors: ["training": StateTensor(shape: [training.count], values: training),
                                        "evaluation": StateTensor(shape: [evaluation.count], values: evaluation)])
    }

    public func restoreState(_ state: ComponentState, step: Int) throws {
        guard let producer else { return }
        try state.expectTensors(["training", "evaluation"])
        let t = try state.tensor("training", count: producer.allPrompts.count)
        // Another number of held-out prompts (eval_examples changed): theirs are sampled again.
        let e = state.tensors["evaluation"]?.values.count == producer.evaluationPrompts.count ? try state.tensor("evaluation", count: producer.evaluationPrompts.count) : nil
        for (name, values) in [("training", t), ("evaluation", e ?? [])] {
            if let bad = values.first(where: { !$0.isFinite }) { throw StateError(.tensor, name, "holds \(bad), not a finite value") }
        }
        let incorrect = try state.ints("all_incorrect")
        guard incorrect.allSatisfy({ $0 >= 0 && $0 < t.count }), Set(incorrect).count == incorrect.count,
              !filterAllIncorrect || incorrect.count < t.count else {
            throw StateError(.value, "all_incorrect", "holds indices outside the \(t.count) training prompts, one twice, or all of them")
        }
        training = t; evaluation = e; allIncorrect = incorrect.sorted(); restored = true
        apply()
    }
}

extension RolloutProducer {
    /// The weighted reward Σ w·r of `samples` samples of each of `pool[chosen]` from `p.model`,
    /// sample j of the i-th chosen prompt from stream (seed, streamOffset + i·samples + j)
    /// (collective; the same values on every rank).
    func sampleAndScore(_ chosen: [Int], of pool: [RolloutPrompt], samples: Int, streamOffset: Int, _ p: StepPreparation) -> [Double] {
        let flat = chosen.flatMap { repeatElement(pool[$0].ids, count: samples) }
        let gens = ShardedGeneration.generate(p.model, prompts: flat, options: settings.sampling(stopIds: stopIds), comm: p.comm) {
            RNG(seed: settings.valueSeed, stream: UInt64(streamOffset + $0))
        }
        return scored(gens.indices.map { i in scoringItem(pool[chosen[i / samples]], gens[i], p) }, p).total
    }
}
