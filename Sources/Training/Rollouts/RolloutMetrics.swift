import Foundation

/// The reward and completion figures of one step's rollouts, named as TRL's `GRPOTrainer`
/// logs them where it has a name: `reward_mean` (TRL: `reward`), `reward_std` (mean over groups
/// of the group's Bessel std), `rewards/<name>/mean`, `frac_reward_zero_std`,
/// `completions/mean_length`, `completions/max_length`, `completions/clipped_ratio` (share of
/// rollouts that hit max_completion_length without stopping). `accuracy` is the share of
/// rollouts whose first reward function gave ≥ 1 (the verifier listed first). Every value is
/// a function of the step batch, which every rank holds, so no reduction is needed.
public enum RolloutMetrics {
    public static func rows(_ sequences: [StepSequence], rewards: [RewardFunction], groupSize g: Int,
                            stopId: Int32) -> [(String, Double)] {
        guard !sequences.isEmpty else { return [] }
        let n = Double(sequences.count)
        let total = sequences.map { s in zip(s.rewards, rewards).reduce(0.0) { $0 + Double($1.1.weight) * Double($1.0) } }
        let groups = stride(from: 0, to: total.count, by: g).map { total[$0..<min($0 + g, total.count)] }
        let stds = groups.map(GroupAdvantages.besselStd)
        let zero = groups.filter { g in g.allSatisfy { $0 == g.first! } }.count
        let lengths = sequences.map { $0.ids.count - $0.promptLength }
        // A rollout that stopped ends with the stop token; one cut at the limit does not.
        let clipped = sequences.filter { $0.ids.last != stopId }.count
        var out: [(String, Double)] = [("reward_mean", total.reduce(0, +) / n),
                                       ("reward_std", stds.reduce(0, +) / Double(max(stds.count, 1)))]
        for (f, fn) in rewards.enumerated() {
            out.append(("rewards/\(fn.name)/mean", sequences.reduce(0.0) { $0 + Double($1.rewards[f]) } / n))
        }
        out.append(("accuracy", Double(sequences.filter { ($0.rewards.first ?? 0) >= 1 }.count) / n))
        out.append(("frac_reward_zero_std", Double(zero) / Double(max(groups.count, 1))))
        out.append(("completions/mean_length", Double(lengths.reduce(0, +)) / n))
        out.append(("completions/max_length", Double(lengths.max() ?? 0)))
        out.append(("completions/clipped_ratio", Double(clipped) / n))
        return out
    }
}
