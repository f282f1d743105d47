import Foundation

/// How several reward functions become one advantage: TRL's `multi_objective_aggregation`
/// (GRPOConfig, 1.16; `GRPOTrainer._generate_and_score_completions`).
public enum RewardAggregation: String, Codable, Sendable, CaseIterable {
    /// r = Σ_f w_f·r_f, then the group advantage under `scale_rewards` (`GroupAdvantages`).
    case sumThenNormalize = "sum_then_normalize"
    /// Each function's rewards z-scored in their group, z_f = (r_f − mean_g) / (std_g + 1e-4);
    /// r = Σ_f w_f·z_f; A = (r − mean_B) / (std_B + 1e-4) over the whole generation batch.
    /// `scale_rewards` plays no part (TRL ignores it; here giving it is refused). GDPO, the
    /// paper TRL's docstring cites (arXiv 2601.05242): a sum of differently scaled rewards lets
    /// the widest one decide the advantage and maps distinct reward combinations to one value.
    case normalizeThenSum = "normalize_then_sum"

    /// The advantages of one generation batch: `perFunction[f][i]` is reward function f on
    /// rollout i, G consecutive rollouts per group. Computed in Double from the whole batch,
    /// which every rank holds, so no rank sees another value.
    public func advantages(_ perFunction: [[Double]], weights: [Double], groupSize g: Int,
                           scaling: RewardScaling) -> GroupAdvantages {
        switch self {
        case .sumThenNormalize:
            return GroupAdvantages(rewards: Self.weightedSum(perFunction, weights: weights), groupSize: g, scaling: scaling)
        case .normalizeThenSum:
            return GroupAdvantages(decoupled: perFunction, weights: weights, groupSize: g)
        }
    }

    /// r_i = Σ_f w_f·r_f,i (in Double, so the sum does not depend on float rounding order), over
    /// the functions that scored rollout i: a NaN r_f,i (a command's `null`) is left out, as
    /// TRL's `nansum`, and a rollout no function scored is NaN — unscorable: left out of every
    /// mean and std, its advantage 0 (TRL's `unscorable_mask`).
    public static func weightedSum(_ perFunction: [[Double]], weights: [Double]) -> [Double] {
        precondition(perFunction.count == weights.count, "RewardAggregation: \(perFunction.count) reward rows for \(weights.count) weights")
        let n = perFunction.first?.count ?? 0
        return (0..<n).map { i in
            let scored = zip(perFunction, weights).filter { !$0.0[i].isNaN }
            return scored.isEmpty ? .nan : scored.reduce(0.0) { $0 + $1.1 * $1.0[i] }
        }
    }

    /// The same sums by rollout: `rollouts[i][f]` is rollout i's reward from function f (a step
    /// sequence's `rewards`).
    public static func weightedSums<C: Collection>(ofRollouts rollouts: C, weights: [Double]) -> [Double] where C.Element == [Double] {
        weightedSum(weights.indices.map { f in rollouts.map { $0[f] } }, weights: weights)
    }

    /// Whether a group carries no signal, so its advantages are exactly 0 (`frac_reward_zero_std`
    /// counts these): its weighted sums are all equal (sum_then_normalize), or every function's
    /// rewards of non-zero weight are (normalize_then_sum: then every z is 0; equal sums of
    /// unequal parts are not, GDPO's point). `rewards[i][f]` is rollout i's reward from function f.
    public func carriesNoSignal(_ rewards: ArraySlice<[Double]>, weights: [Double]) -> Bool {
        // The scored values (NaN: a `null`) all equal, fewer than two included, as the advantages read them.
        func flat(_ x: [Double]) -> Bool {
            let scored = x.filter { !$0.isNaN }
            return scored.allSatisfy { $0 == scored[0] }
        }
        switch self {
        case .sumThenNormalize:
            return flat(Self.weightedSums(ofRollouts: rewards, weights: weights))
        case .normalizeThenSum:
            // A function of weight 0 moves no advantage.
            return weights.indices.allSatisfy { f in weights[f] == 0 || flat(rewards.map { $0[f] }) }
        }
    }
}

extension GroupAdvantages {
    /// normalize_then_sum (`RewardAggregation.normalizeThenSum`), as TRL forms it: per function
    /// and group, z = (r − mean_g) / (std_g + 1e-4) (Bessel std; 0 for a group of one, as TRL's
    /// num_generations == 1 branch); s = Σ_f w_f·z_f; A = (s − mean_B) / (std_B + 1e-4), mean and
    /// Bessel std over every scorable rollout of the batch (one some function scored). A function whose rewards are equal in a group
    /// gives exactly 0 there; a group where every function of non-zero weight has equal rewards
    /// gets exactly 0 advantages (its s is 0, and mean_B is 0 but for rounding, each group's z
    /// summing to 0, where TRL keeps the residue) and is counted in `zeroStdGroups`.
    /// `groupStd`: the Bessel std of each group's s.
    public init(decoupled perFunction: [[Double]], weights: [Double], groupSize g: Int) {
        precondition(perFunction.count == weights.count && !perFunction.isEmpty, "GroupAdvantages: \(perFunction.count) reward rows for \(weights.count) weights")
        let n = perFunction[0].count
        precondition(g >= 1 && n % g == 0 && perFunction.allSatisfy { $0.count == n }, "GroupAdvantages: \(n) rewards in groups of \(g)")
        let groups = n / g
        var sum = [Double](repeating: 0, count: n)
        var silent = [Bool](repeating: true, count: groups)
        for (r, w) in zip(perFunction, weights) {
            for k in 0..<groups {
                let group = (k * g)..<((k + 1) * g)
                // The rewards this function gave in the group (NaN: a `null`, left out as TRL's nanmean).
                let x = r[group].filter { !$0.isNaN }
                // z = 0 exactly (so too with fewer than two scores: TRL's nanstd is NaN, and
                // nansum drops the z's); a function of weight 0 moves no advantage.
                if w == 0 || x.allSatisfy({ $0 == x[0] }) { continue }
                silent[k] = false
                let mean = x.reduce(0, +) / Double(x.count)
                let denominator = Self.besselStd(x[...]) + Self.epsilon
                for i in group where !r[i].isNaN { sum[i] += w * ((r[i] - mean) / denominator) }
            }
        }
        // A rollout no function scored is unscorable: out of the batch's mean and std, advantage 0.
        let scorable = (0..<n).map { i in perFunction.contains { !$0[i].isNaN } }
        let scoredSums = (0..<n).filter { scorable[$0] }.map { sum[$0] }
        let batchMean = scoredSums.reduce(0, +) / Double(max(scoredSums.count, 1))
        let batchStd = Self.besselStd(scoredSums[...])
        var adv = [Float](repeating: 0, count: n)
        for k in 0..<groups where !silent[k] {
            for i in (k * g)..<((k + 1) * g) where scorable[i] { adv[i] = Float((sum[i] - batchMean) / (batchStd + Self.epsilon)) }
        }
        advantages = adv
        groupStd = (0..<groups).map { k in Self.besselStd(((k * g)..<((k + 1) * g)).filter { scorable[$0] }.map { sum[$0] }[...]) }
        zeroStdGroups = silent.filter { $0 }.count
    }
}
