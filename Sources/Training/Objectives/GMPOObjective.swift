import Foundation
import TensorCore

/// Geometric-Mean Policy Optimization, Zhao et al., "GMPO: Geometric-Mean Policy Optimization",
/// arXiv 2507.20673 (§3, Eq. 4), as TRL 1.16's experimental `GMPOTrainer._compute_loss` trains
/// it: GRPO's group advantages, but each rollout's update weighted by the geometric mean of its
/// tokens' importance ratios, clipped per token in log space, instead of the arithmetic mean
/// of clipped ratios — an outlier token moves the geometric mean far less, so the clip range
/// can be wider (ε = 0.4 in log space, ratios within (e^−0.4, e^0.4)):
///
///   l_t = log π_θ(y_t) − log π_old(y_t),   l̃_t = A_i > 0 ? min(l_t, clamp(l_t, −ε_low, ε_high))
///                                                       : max(l_t, clamp(l_t, −ε_low, ε_high)),
///   w_i = exp((1/|o_i|)·Σ_t m_t·l̃_t),   ℓ_i = −w_i·A_i + β·(1/|o_i|)·Σ_t m_t·k3_t,
///   L = (1/B)·Σ_i ℓ_i,   k3_t = e^{d} − d − 1, d = log π_ref(y_t) − log π_θ(y_t),
///
///   ∂L/∂log π_θ(y_t) = m_t·(−A_i·w_i·g_t + β·(1 − e^{d}))/(|o_i|·B),
///
/// the min/max the PPO trust region written in log space (one-sided: a token past the clip on
/// the side its advantage pushes stops its gradient): g_t = 1 where l̃_t = l_t, 0 where the clip
/// bound is taken, and ½ exactly at a bound, as torch differentiates it (clamp passes nothing
/// at its bounds, minimum/maximum split a tie) — every on-policy token with ε = 0 is there.
/// With `top_entropy_quantile` ρ < 1 the geometric mean is over the rollout's kept tokens only
/// (those whose entropy is at least the (1 − ρ) quantile of the step's, `EntropySelection`, as
/// grpo's; w_i = exp(Σ_kept l̃ / max(kept, 1))), the KL's mean and the figures over every token,
/// as TRL's `seq_mask`. B the rollouts of the step batch (all
/// ranks), |o_i| rollout i's trained tokens (at least 1: a rollout masked by
/// mask_truncated_completions has w_i = 1 and the constant term −A_i, as TRL's mean over its
/// [B] losses), A_i detached (`GroupAdvantages`, grpo's). The KL term is k3 without the
/// importance ratio and averaged over the rollout (TRL's GMPO; no `use_bias_correction_kl`).
/// π_old: on a generation's first step, and in evaluation, the current weights themselves,
/// detached (w_i = 1: TRL's old log-probs are then the live ones detached); on a reused
/// generation's later steps (`num_iterations`, `steps_per_generation`) the sampler's log-probs.
/// The logits are divided by the rollout temperature first (`Trainer.logitTemperature`). The
/// mean log-weight is clamped at ±20 (TRL has none; only keeps exp finite).
/// Arguments (TRL's GMPOConfig, GRPOConfig's names): `epsilon` ε_low 0.4, `epsilon_high` (= epsilon),
/// both in log space, `beta` 0 (no reference model), `top_entropy_quantile` 1 (every token). Figures (TRL's): `clip_ratio/low_mean`
/// (tokens with l_t < −ε_low and A < 0), `clip_ratio/high_mean` (l_t > ε_high and A > 0),
/// `clip_ratio/region_mean`, `kl` (mean k3) with β > 0, `entropy` — token means.
public final class GMPOObjective: Objective, DetachedEvaluable, RolloutPolicyObjective {
    public let name = "gmpo"
    public let trainerName = "GMPOTrainer"
    public let requirements: ObjectiveRequirements
    public let epsilonLow: Double, epsilonHigh: Double, beta: Float
    /// TRL's `top_entropy_quantile` ρ: the geometric mean over the top-ρ tokens by entropy (1: all).
    public let topEntropyQuantile: Float
    /// The step's kept tokens under ρ < 1 (grpo's selection).
    let highEntropy: TopEntropyQuantile

    public init(epsilon: Float = 0.4, epsilonHigh: Float? = nil, beta: Float = 0, topEntropyQuantile: Float = 1) throws {
        try checkArg(epsilon >= 0 && epsilon.isFinite, "gmpo", "epsilon (log space) must be a finite number >= 0, got \(epsilon)")
        try checkArg((epsilonHigh ?? epsilon) >= 0 && (epsilonHigh ?? epsilon).isFinite, "gmpo", "epsilon_high (log space) must be a finite number >= 0, got \(epsilonHigh ?? epsilon)")
        try checkArg(beta >= 0, "gmpo", "beta must be >= 0, got \(beta)")
        try checkArg((0...1).contains(topEntropyQuantile), "gmpo", "top_entropy_quantile must be in [0, 1], got \(topEntropyQuantile)")
        epsilonLow = Double(epsilon); self.epsilonHigh = Double(epsilonHigh ?? epsilon); self.beta = beta
        self.topEntropyQuantile = topEntropyQuantile
        highEntropy = TopEntropyQuantile(topEntropyQuantile)
        var r = ObjectiveRequirements(referenceModel: beta > 0, statisticsPass: topEntropyQuantile < 1, behaviourLogProbs: true)
        r.statisticsFromPolicyAlone = true
        r.rollouts = true
        requirements = r
    }

    /// One token's log-ratio clipped as TRL clips it, the share of its gradient that passes
    /// (torch's: ½ at a bound), and its clip flags.
    func clipped(_ l: Double, advantage a: Double) -> (value: Double, live: Double, low: Bool, high: Bool) {
        let c = min(max(l, -epsilonLow), epsilonHigh)
        let value = a > 0 ? min(l, c) : max(l, c)
        let live = l == -epsilonLow || l == epsilonHigh ? 0.5 : value == l ? 1 : 0
        return (value, live, l < -epsilonLow && a < 0, l > epsilonHigh && a > 0)
    }

    /// The statistics pass under ρ < 1: each loss row's entropy (grpo's selection).
    public func statistics(_ input: ObjectiveInput) -> [Float] { highEntropy.statistics(input) }
    public func beginStep(_ context: StepContext) { highEntropy.beginStep(context) }

    /// The loss and gradient, π_old on a generation's first step read from `detached` (the
    /// trainer passes the logits themselves; the finite-difference checks hold it fixed).
    public func evaluate(_ input: ObjectiveInput, detached: UnsafePointer<Float>, dlogits: UnsafeMutablePointer<Float>?) -> ObjectiveResult {
        let V = input.vocab, rollouts = input.sequences.count
        let ref = beta > 0 ? requireReference(input, name) : nil
        // Pass 1: each trained row's log-prob and π_old (`RolloutTokenRows`), clipped log-ratio
        // and k3; each rollout's sums.
        let rows = RolloutTokenRows(input, detached: detached, objective: name), present = rows.present
        var dKL = [Float](repeating: 0, count: input.rows), live = [Double](repeating: 0, count: input.rows)
        var clippedSum = [Double](repeating: 0, count: rollouts), klSum = clippedSum, tokens = clippedSum, expected = clippedSum
        var kept = clippedSum
        let keep = highEntropy.keptRows(input, objective: name)
        var clip = ClipCounts(), klTotal = 0.0
        for r in 0..<input.rows where input.sequenceId[r] >= 0 && input.mask[r] != 0 {
            let s = Int(input.sequenceId[r]), m = Double(input.mask[r])
            let c = clipped(Double(rows.logp[r] - rows.old[r]), advantage: Double(input.sequences[s].advantage))
            tokens[s] += m
            if keep?[r] != false {
                live[r] = c.live
                clippedSum[s] += m * c.value
                kept[s] += m
            }
            expected[s] = Double(input.sequenceLossTokens[r])
            clip.add(low: c.low, high: c.high)
            if let ref {
                let k3 = PPOClippedToken.k3(reference: ref + r * V, vocab: V, target: Int(input.targets[r]), logp: rows.logp[r])
                klSum[s] += m * Double(k3.value); klTotal += Double(k3.value)
                dKL[r] = k3.dLogp
            }
        }
        // Per rollout: ℓ_i, and the weight its tokens' gradients share.
        let perRollout = rollouts > 0 ? 1 / Double(rollouts) : 0
        var weight = [Double](repeating: 0, count: rollouts), total = 0.0
        for s in present.sorted() {
            precondition(tokens[s] == expected[s], "objective gmpo: a rollout split between calls")
            let n = max(tokens[s], 1), a = Double(input.sequences[s].advantage)
            weight[s] = exp(min(max(clippedSum[s] / max(kept[s], 1), -20), 20))
            total += perRollout * (-weight[s] * a + Double(beta) * klSum[s] / n)
        }
        // Pass 2: each row's gradient through its log-prob, into dlogits.
        var diag = TokenDiagnostics()
        for r in 0..<input.rows where input.mask[r] != 0 {
            let s = Int(input.sequenceId[r])
            let n = max(tokens[s], 1), a = Double(input.sequences[s].advantage)
            let slope = -a * weight[s] * live[r] / max(kept[s], 1) + Double(beta) * Double(dKL[r]) / n
            rows.addGradient(input, row: r, input.mask[r] * Float(perRollout * slope), dlogits: dlogits, diag: &diag)
        }
        var d: [String: Double] = [:], c: [String: Double] = [:]
        clip.into(&d, &c, tokens: diag.count)
        if ref != nil { d["kl"] = klTotal; c["kl"] = diag.count }
        diag.into(&d, &c)
        return ObjectiveResult(loss: total, diagnostics: d, diagnosticCounts: c)
    }
}
