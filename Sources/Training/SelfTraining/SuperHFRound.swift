import Foundation

/// `--self-train superhf`: SuperHF (Mukobi et al., arXiv 2310.16763, §3; public code
/// `openfeedback/superhf` `training.py`, `filtering.py::CompletionFilterTopK`). Each round the
/// model samples k completions (`k`, the code's `superbatch_size` 16, at `temperature` 1 and
/// `top_p` 0.95) for `prompts` prompts — the rows of `--unlabelled` when given, else the
/// prompts of `--data` — a reward scores every completion, and the `top_k` (1) best of each
/// prompt become the round's training rows (a stable sort by reward, best first, as the code's
/// `sorted(…, reverse=True)`: ties go to the completion sampled first). The rows fill a share
/// `ratio` (1: SuperHF fine-tunes on the filtered completions only) of every step's batch until
/// the next round, trained with `--objective superhf`:
///
///   L = Σ_t M_t·[ −log π_θ(y*_t) + c·KL(π_0 ‖ π_θ)_t ] / N_global,  y* = argmax_j R(x, y_j),
///
/// c = `kl_coefficient` (0.35), π_0 the initial model (`Objectives/SuperHFObjective.swift`).
/// The reward is R = Σ_f w_f·r_f over the reward functions of `--reward NAME[=WEIGHT]` (the
/// ones GRPO uses, `Rollouts/RewardFunction.swift`, scored as `RolloutScoring` does), or the
/// `--self-train-scorer` alone (weight 1) without `--reward`. Only finished completions (ended
/// by the format's stop token) are scored and eligible; a prompt none of whose completions
/// finished adds no row; nor is a completion no reward function scored (a command's `null`). The paper's optional length penalty is not implemented.
/// Metrics: `superhf_reward_mean` (all scored completions), `superhf_best_reward` (the kept
/// ones), `superhf_finished`; with a `--self-train-scorer` that can judge them,
/// `pseudo_label_precision` (share of kept rows it accepts).
struct SuperHFRound: SelfTrainRound {
    let candidates: [SelfTrainPrompt]
    let options: SelfTrainOptions
    let rewards: [RewardFunction]
    let scoring: SelfTrainScoring?
    let seed: UInt64

    var samplesPerPrompt: Int { options.samples }
    var temperature: Float { options.temperature }
    var topP: Float { options.topP }

    func prompts(round: Int) -> [SelfTrainPrompt] {
        SelfTrainRounds.pick(options.prompts, of: candidates.count, round: round, seed: seed).map { candidates[$0] }
    }

    /// The indices of the `topK` best rewards, best first (nil: not eligible); equal rewards
    /// keep their sampling order.
    static func best(_ rewards: [Double?], topK: Int) -> [Int] {
        let eligible = rewards.indices.filter { rewards[$0] != nil }
        let sorted = eligible.sorted { a, b in rewards[a]! != rewards[b]! ? rewards[a]! > rewards[b]! : a < b }
        return Array(sorted.prefix(topK))
    }

    func decide(round: Int, prompts: [SelfTrainPrompt], samples: [[RoundSample]]) throws -> (RoundOutcome, [[String: Any]]) {
        var items: [ScoringItem] = [], at: [(prompt: Int, sample: Int)] = []
        for (i, p) in prompts.enumerated() {
            for (j, s) in samples[i].enumerated() where s.finished {
                items.append(ScoringItem(prompt: p.text, completion: s.text, reference: p.reference, source: p.source))
                at.append((i, j))
            }
        }
        let matrix = RolloutScoring.score(items, with: rewards)
        if let error = matrix.error { throw ScorerError(error) }
        let total = RolloutScoring.weightedSum(matrix, weights: rewards.map(\.weight), count: items.count)
        var reward = samples.map { [Double?](repeating: nil, count: $0.count) }
        // A completion no reward function scored (each gave `null`) is not eligible.
        for (n, a) in at.enumerated() where !total[n].isNaN { reward[a.prompt][a.sample] = total[n] }

        var outcome = RoundOutcome(), kept: [(prompt: Int, sample: Int)] = []
        for i in prompts.indices {
            for j in Self.best(reward[i], topK: options.topK) {
                kept.append((i, j))
                outcome.rows.append(prompts[i].row(answer: samples[i][j].ids))
            }
        }
        // The checker judges the kept rows it can (a reference scorer only those with a reference).
        var correct: [Int: Bool] = [:]
        if let scoring {
            let judged = kept.indices.filter { !scoring.needsReference || prompts[kept[$0].prompt].reference != nil }
            let verdicts = try scoring.accepts(judged.map { n in
                let p = prompts[kept[n].prompt]
                return ScoringItem(prompt: p.text, completion: samples[kept[n].prompt][kept[n].sample].text,
                                   reference: p.reference, source: p.source)
            })
            for (n, ok) in zip(judged, verdicts) { correct[n] = ok }
        }
        var records: [[String: Any]] = []
        for (i, p) in prompts.enumerated() {
            let mine = kept.indices.filter { kept[$0].prompt == i }
            var r: [String: Any] = ["round": round + 1, "prompt": p.text, "source": p.source, "answers": samples[i].map(\.text),
                                    "finished": samples[i].map(\.finished),
                                    "rewards": reward[i].map { $0.map { $0 as Any } ?? NSNull() },
                                    "best": mine.map { kept[$0].sample }, "kept": mine.map { samples[i][kept[$0].sample].text }]
            if let ref = p.reference { r["reference"] = ref }
            if !mine.isEmpty, mine.allSatisfy({ correct[$0] != nil }) { r["correct"] = mine.map { correct[$0]! } }
            records.append(r)
        }
        let keptRewards = kept.map { reward[$0.prompt][$0.sample]! }
        let scored = samples.reduce(0) { $0 + $1.count }
        outcome.metrics = [("self_train_round", Double(round + 1)),
                           ("superhf_finished", Double(items.count) / Double(max(1, scored)))]
        let scoredTotals = total.filter { !$0.isNaN }
        if !scoredTotals.isEmpty { outcome.metrics.append(("superhf_reward_mean", scoredTotals.reduce(0, +) / Double(scoredTotals.count))) }
        if !keptRewards.isEmpty { outcome.metrics.append(("superhf_best_reward", keptRewards.reduce(0, +) / Double(keptRewards.count))) }
        if !correct.isEmpty {
            outcome.metrics.append(("pseudo_label_precision", Double(correct.values.filter { $0 }.count) / Double(correct.count)))
        }
        return (outcome, records)
    }
}
