import Foundation

/// The reward and completion figures of one step's rollouts, named and defined as TRL's
/// `GRPOTrainer` (1.16) logs them where it has a name: `reward` (the mean over rollouts of
/// Σ w·r; logged as `reward_mean` before 2026-12-05, which `MetricsLog.read` still reads),
/// `reward_std` (Bessel std over every rollout's Σ w·r), `rewards/<name>/mean` and `/std`,
/// `frac_reward_zero_std` (share of groups whose rewards are all equal, so their advantages
/// are 0 — in every `scale_rewards` mode; TRL's `batch` mode logs whether the whole batch's std
/// is 0 instead; under normalize_then_sum, groups where every reward function's rewards are
/// equal, `RewardAggregation.carriesNoSignal`, where TRL again logs the batch's), `completions/mean_length`, `min_length`, `max_length` (generated tokens, the
/// stop token included), `completions/clipped_ratio` (share of rollouts that hit
/// max_completion_length without stopping), `completions/mean_terminated_length`,
/// `min_terminated_length`, `max_terminated_length` (over the rollouts that stopped; 0 when none
/// did, as TRL). `accuracy` is the share of rollouts whose first reward function gave ≥ 1 (the
/// verifier listed first), of those it scored. A function's `null` (NaN, no reward) is left out
/// of every reward figure, as TRL's nanmean and nanstd leave its None; a figure with nothing
/// to average is NaN (null in metrics.jsonl). Every value is a function of the step batch, which every rank holds,
/// so no reduction is needed and no rank count changes them.
extension StepSequence {
    /// Whether the rollout stopped: it ends with a stop token; one cut at the limit does not
    /// (a stop token it generated would have ended it there).
    public func stopped(_ stopIds: Set<Int32>) -> Bool { ids.last.map(stopIds.contains) ?? false }
}

public enum RolloutMetrics {
    public static func rows(_ sequences: [StepSequence], rewards: [RewardFunction], groupSize g: Int,
                            stopIds: Set<Int32>, aggregation: RewardAggregation = .sumThenNormalize) -> [(String, Double)] {
        guard !sequences.isEmpty else { return [] }
        let n = Double(sequences.count)
        let weights = rewards.map { Double($0.weight) }, perRollout = sequences.map { $0.rewards.map(Double.init) }
        // Σ w·r over the functions that scored each rollout, NaN where none did (unscorable), and
        // every figure over the scored ones: TRL's nanmean and nanstd.
        let total = RewardAggregation.weightedSums(ofRollouts: perRollout, weights: weights)
        let groups = stride(from: 0, to: perRollout.count, by: g).map { perRollout[$0..<min($0 + g, perRollout.count)] }
        let zero = groups.filter { aggregation.carriesNoSignal($0, weights: weights) }.count
        let lengths = sequences.map { $0.ids.count - $0.promptLength }
        let stopped = sequences.map { $0.stopped(stopIds) }
        let terminated = zip(lengths, stopped).filter(\.1).map(\.0)
        var out: [(String, Double)] = [("reward", nanMean(total)), ("reward_std", nanStd(total))]
        for (f, fn) in rewards.enumerated() {
            let values = perRollout.map { $0[f] }
            out.append(("rewards/\(fn.name)/mean", nanMean(values)))
            out.append(("rewards/\(fn.name)/std", nanStd(values)))
        }
        let judged = sequences.filter { !($0.rewards.first?.isNaN ?? false) }
        out.append(("accuracy", judged.isEmpty ? .nan : Double(judged.filter(\.solved).count) / Double(judged.count)))
        out.append(("frac_reward_zero_std", Double(zero) / Double(max(groups.count, 1))))
        out.append(("completions/mean_length", Double(lengths.reduce(0, +)) / n))
        out.append(("completions/min_length", Double(lengths.min() ?? 0)))
        out.append(("completions/max_length", Double(lengths.max() ?? 0)))
        out.append(("completions/clipped_ratio", Double(stopped.filter { !$0 }.count) / n))
        out.append(("completions/mean_terminated_length", terminated.isEmpty ? 0 : Double(terminated.reduce(0, +)) / Double(terminated.count)))
        out.append(("completions/min_terminated_length", Double(terminated.min() ?? 0)))
        out.append(("completions/max_terminated_length", Double(terminated.max() ?? 0)))
        return out
    }

    /// The mean of the values that are not NaN (NaN when none is), as torch.nanmean.
    static func nanMean(_ x: [Double]) -> Double {
        let scored = x.filter { !$0.isNaN }
        return scored.isEmpty ? .nan : scored.reduce(0, +) / Double(scored.count)
    }

    /// The Bessel std of the values that are not NaN: NaN for fewer than two, as TRL's `nanstd`
    /// (but 0 for a single scored value, as this figure was before nulls).
    static func nanStd(_ x: [Double]) -> Double {
        let scored = x.filter { !$0.isNaN }
        return scored.count < 2 ? (scored.count == x.count ? 0 : .nan) : GroupAdvantages.besselStd(scored[...])
    }
}
