import Foundation

/// How advantages are scaled: TRL's `scale_rewards` (GRPOConfig).
public enum RewardScaling: String, Codable, Sendable, CaseIterable {
    /// (r − mean_g) / (std_g + 1e-4), std over the rollouts of the prompt (GRPO, arXiv 2402.03300 §4.1.2).
    case group
    /// (r − mean_g) / (std_B + 1e-4), std over every rollout of the generation batch.
    case batch
    /// r − mean_g (Dr.GRPO, arXiv 2503.20783 §3.1: no std division).
    case none
}

/// Group-relative advantages of one generation batch, as TRL's `GRPOTrainer` forms them
/// (`_generate_and_score_completions`): G consecutive rollouts per prompt form a group,
/// A_i = r_i − mean_g, divided by (std + 1e-4) unless `none`, std with Bessel's correction
/// (torch.std). A group whose rewards are all equal carries no signal: its advantages are
/// exactly 0 (not a rounding residue of r − mean) and it is counted (`frac_reward_zero_std`),
/// as is one with fewer than two scored rollouts (unscorable ones, NaN, have advantage 0).
/// Computed in Double from the whole generation batch, which every rank holds, so no rank
/// sees a different value.
public struct GroupAdvantages: Equatable {
    public var advantages: [Float]
    /// Per group: Bessel standard deviation of its scored rewards.
    public var groupStd: [Double]
    public var zeroStdGroups: Int

    public static let epsilon = 1e-4

    public init(rewards: [Double], groupSize g: Int, scaling: RewardScaling) {
        precondition(g >= 1 && rewards.count % g == 0, "GroupAdvantages: \(rewards.count) rewards in groups of \(g)")
        let groups = rewards.count / g
        var adv = [Float](repeating: 0, count: rewards.count)
        var stds: [Double] = [], zero = 0
        // An unscorable rollout (NaN: no reward function scored it, `RewardAggregation.weightedSum`)
        // is left out of every mean and std and keeps advantage 0 (TRL's nanmean, nanstd, nan_to_num).
        let batchStd = Self.besselStd(rewards.filter { !$0.isNaN }[...])
        for k in 0..<groups {
            let group = (k * g)..<((k + 1) * g)
            let r = rewards[group].filter { !$0.isNaN }
            let std = Self.besselStd(r[...])
            stds.append(std)
            // Equal rewards — so too fewer than two scored (TRL: its nanstd is NaN there, and so the advantages).
            if r.allSatisfy({ $0 == r[0] }) { zero += 1; continue }
            let mean = r.reduce(0, +) / Double(r.count)
            let denominator: Double
            switch scaling {
            case .group: denominator = std + Self.epsilon
            case .batch: denominator = batchStd + Self.epsilon
            case .none: denominator = 1
            }
            for i in group where !rewards[i].isNaN { adv[i] = Float((rewards[i] - mean) / denominator) }
        }
        advantages = adv; groupStd = stds; zeroStdGroups = zero
    }

    /// Sample standard deviation (n − 1); 0 for fewer than two values.
    static func besselStd(_ x: ArraySlice<Double>) -> Double {
        guard x.count > 1 else { return 0 }
        let mean = x.reduce(0, +) / Double(x.count)
        return (x.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(x.count - 1)).squareRoot()
    }
}
