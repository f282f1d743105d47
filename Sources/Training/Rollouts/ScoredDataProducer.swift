import Foundation

/// Offline scored data (`scored_data: true`): the rows of `--data` are pre-generated,
/// pre-scored samples (rejection sampling, offline GRPO) and train as rollouts without any
/// generation. Each step the sampler picks `batch_size` rows as plain SFT does (`TrainEpochs.sampler`); each
/// trains on its completion with the advantage `ScoredRows` gave its line (its `advantage`, or
/// its reward's group z-score under `scale_rewards`), its reward, and its group.
///
/// The rows carry no behaviour log-probs (nobody recorded the sampler's): the ratio's
/// denominator is the detached current log-prob, so c = π_θ/sg(π_θ) = 1 with gradient ∇log π_θ,
/// as TRL's `GRPOTrainer` does with one iteration per generation (`old_per_token_logps =
/// per_token_logps.detach()`), and the clip is never active. The objective's aggregation
/// (`loss_type`) is unchanged; dr_grpo's constant is `max_completion_length`.
public final class ScoredDataProducer: ReportingProducer {
    public let name = "scored-data"
    let examples: [Example]
    /// Per training row: its score (same order as `examples`).
    let scores: [ScoredRows.Score]
    let sampler: BatchSource
    public private(set) var stepFields: [(String, Any)] = []

    public init(examples: [Example], scores: [ScoredRows.Score], sampler: BatchSource) {
        precondition(examples.count == scores.count, "ScoredDataProducer: one score per row")
        self.examples = examples; self.scores = scores; self.sampler = sampler
    }

    /// From a recipe: objective grpo, no reward functions (the rewards are the data's), every
    /// training row's line scored.
    public convenience init(setup: RunSetup) throws {
        let r = setup.recipe
        try r.checkScoredData()
        guard let grpo = setup.objective as? GRPOObjective else {   // checkScoredData named the objective
            throw RecipeError("scored_data: objective \(setup.objective.name) is not grpo")
        }
        guard r.prompts == nil else { throw RecipeError("scored_data trains on the rows of --data: drop --prompts") }
        grpo.maxCompletionLength = r.maxCompletionLength
        let lines = try ScoredRows.scores(try ScoredRows.read(path: r.data, skipBadLines: r.skipBadLines), scaling: r.scaleRewards,
                                          path: r.data)
        let scores = try setup.train.examples.map { e -> ScoredRows.Score in
            guard let l = Self.line(of: e.source, in: r.data), let s = lines[l] else {
                throw RecipeError("scored_data: \(e.source) is not a scored line of \(r.data)")
            }
            return s
        }
        self.init(examples: setup.train.examples, scores: scores,
                  sampler: TrainEpochs.sampler(r, rows: setup.train.count))
    }

    /// The line number of an example's source "path:line" of `path`.
    static func line(of source: String, in path: String) -> Int? {
        guard source.hasPrefix(path + ":") else { return nil }
        return Int(source.dropFirst(path.count + 1))
    }

    public func prepare(_ p: StepPreparation) -> StepBatch {
        let batch = p.decide {
            StepBatch(step: p.step, sequences: sampler.batch(step: p.step).map { i in
                let e = examples[i], s = scores[i]
                var q = StepSequence(example: i, origin: .rollout, ids: e.ids, lossMask: e.lossMask, promptLength: e.promptLength)
                q.advantage = s.advantage
                q.group = s.group
                q.rewards = s.reward.map { [$0] } ?? []
                return q
            })
        }
        let rewards = batch.sequences.compactMap(\.rewards.first)
        stepFields = [("advantage_mean", batch.sequences.reduce(0.0) { $0 + Double($1.advantage) } / Double(max(batch.sequences.count, 1)))]
            + (rewards.isEmpty ? [] : [("reward", rewards.reduce(0.0) { $0 + Double($1) } / Double(rewards.count))])
        return batch
    }

    public var state: [UInt64] { sampler.state }
    public func restore(_ state: [UInt64]) throws { try sampler.restore(state) }
}
