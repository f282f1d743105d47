import Foundation
import TensorCore

/// CHORD, "On-Policy RL Meets Off-Policy Experts: Harmonizing Supervised Fine-Tuning and
/// Reinforcement Learning via Dynamic Weighting", Zhang et al., arXiv 2508.11408, §3 (Eq. 6–8);
/// code: `modelscope/Trinity-RFT` `MIXCHORDPolicyLossFn`, `SFTPhiLossFn`, `mu_schedule_function`.
///
///   L = (1 − μ)·L_grpo + μ·L_sft,
///   L_grpo = Σ_{rollout tokens} −min(c·A, clip(c, 1 − ε_low, 1 + ε_high)·A) / N_rollout,
///   L_sft  = Σ_{expert tokens} −w·log p(y_t) / N_expert,   w = sg(φ(p)) = sg(p(1 − p)) (CHORD-φ) or 1 (CHORD-μ),
///   μ(s) = s/W·μ_peak for s < W; μ_valley for s ≥ W + D; else
///          (μ_peak − μ_valley)·½(1 + cos(π(s − W)/D)) + μ_valley.
///
/// Rollouts come from the rollout producer (group advantages, the sampler's log-probs c's
/// denominator on a reused generation's later steps, π_θ detached on its first); the expert share of each step batch is demonstrations of the training data
/// (`expert_share` of all its sequences, Trinity's `expert_data_ratio`). N_rollout and N_expert are
/// the loss tokens of each kind in the whole step batch (the per-type token means Trinity
/// re-weights micro-batches to), so the result does not depend on the rank count. Detached: φ,
/// A, the behaviour log-probs, μ. The PPO term is Trinity's, dual clip included: for A < 0,
/// min(ℓ, −A·`clip_ratio_c`) (`PPOClippedToken.dualClipped`; it bites only off-policy, with
/// steps_per_generation or num_iterations > 1, where a ratio can pass c).
/// Arguments (Trinity's defaults, the class's): `mu_peak` 0.1, `mu_valley` 0.1, `mu_warmup` W 0,
/// `mu_decay` D 0, `phi` true, `expert_share` 0.2, `epsilon` 0.2, `epsilon_high` (= epsilon),
/// `clip_ratio_c` 3.
/// Diagnostics: `mu`, `sft_loss`, `grpo_loss`, `clip_ratio/low_mean`, `clip_ratio/high_mean`,
/// `clip_ratio/region_mean` (as grpo), `ratio`, entropy, mean_p.
public final class CHORDObjective: Objective, DetachedEvaluable, DemonstrationMixing {
    public let name = "chord"
    public let requirements: ObjectiveRequirements
    public let muPeak: Float, muValley: Float, muWarmup: Int, muDecay: Int
    public let phi: Bool
    public let expertShare: Float
    public let epsilonLow: Float, epsilonHigh: Float, clipRatioC: Float

    public init(muPeak: Float = 0.1, muValley: Float = 0.1, muWarmup: Int = 0, muDecay: Int = 0, phi: Bool = true,
                expertShare: Float = 0.2, epsilon: Float = 0.2, epsilonHigh: Float? = nil, clipRatioC: Float = 3) throws {
        try checkArg((0...1).contains(muPeak) && (0...1).contains(muValley), "chord", "mu_peak and mu_valley must be in [0, 1]")
        try checkArg(expertShare > 0 && expertShare < 1, "chord", "expert_share must be in (0, 1), got \(expertShare)")
        try checkArg(epsilon >= 0 && epsilon < 1, "chord", "epsilon must be in [0, 1), got \(epsilon)")
        try checkArg((epsilonHigh ?? epsilon) >= 0, "chord", "epsilon_high must be >= 0")
        try checkArg(clipRatioC > 1, "chord", "clip_ratio_c must be > 1 (verl's rule), got \(clipRatioC)")
        self.muPeak = muPeak; self.muValley = muValley; self.muWarmup = muWarmup; self.muDecay = muDecay; self.phi = phi
        self.expertShare = expertShare; self.epsilonLow = epsilon; self.epsilonHigh = epsilonHigh ?? epsilon
        self.clipRatioC = clipRatioC
        var r = ObjectiveRequirements()
        r.rollouts = true
        requirements = r
    }

    /// μ at optimizer step `s` (0-based), Trinity's `mu_schedule_function`.
    public func mu(step s: Int) -> Float {
        if s < muWarmup { return Float(s) / Float(muWarmup) * muPeak }
        if s >= muWarmup + muDecay { return muValley }
        let cosine = 0.5 * (1 + cos(Double.pi * Double(s - muWarmup) / Double(muDecay)))
        return (muPeak - muValley) * Float(cosine) + muValley
    }

    /// φ, and a first step's π_old, are taken at `detached` (the training logits themselves in a
    /// step; the unperturbed ones in a finite-difference check), so their gradient is never part of the loss's.
    public func evaluate(_ input: ObjectiveInput, detached: UnsafePointer<Float>,
                         dlogits: UnsafeMutablePointer<Float>?) -> ObjectiveResult {
        let V = input.vocab
        let mu = mu(step: input.context.step)
        // Loss tokens of each kind in the whole step batch (lossMask[0] is never a target).
        var rolloutTokens = 0, expertTokens = 0
        for s in input.sequences {
            let n = s.lossMask.dropFirst().reduce(0) { $0 + Int($1) }
            if s.origin == .demonstration { expertTokens += n } else { rolloutTokens += n }
        }
        let rlScale = (1 - mu) * inverseCount(rolloutTokens), sftScale = mu * inverseCount(expertTokens)
        let lo = 1 - epsilonLow, hi = 1 + epsilonHigh
        var diag = TokenDiagnostics()
        var rl = 0.0, sft = 0.0, ratioSum = 0.0, rlCount = 0.0, clip = ClipCounts()
        for r in 0..<input.rows where input.mask[r] != 0 {
            let s = Int(input.sequenceId[r])
            precondition(s >= 0 && s < input.sequences.count, "objective chord needs the step batch's sequences in its input")
            let y = lossTarget(input, r, name)
            let z = input.logits + r * V
            let lse = SoftmaxKernels.logSumExp(z, count: V)
            let logp = z[y] - lse, p = expf(logp)
            let g: Float   // ∂L/∂logp of this token, already scaled
            if input.sequences[s].origin == .demonstration {
                let pd = expf(LogitRow.detachedLogProb(detached, input.logits, row: r, V, target: y, liveLogP: logp))
                let w = phi ? pd * (1 - pd) : 1
                sft += Double(w * -logp)
                g = -sftScale * w * input.mask[r]
            } else {
                let old = PPOClippedToken.behaviourLogProb(input, row: r, live: logp, detached: detached)
                let a = input.sequences[s].advantage
                let ppo = PPOClippedToken.dualClipped(PPOClippedToken.loss(logp: logp, old: old, advantage: a, low: lo, high: hi),
                                                      advantage: a, c: clipRatioC)
                rl += Double(ppo.loss); ratioSum += Double(ppo.ratio); rlCount += 1
                clip.add(ppo)
                g = rlScale * ppo.dLogp * input.mask[r]
            }
            // ∂ℓ/∂z_v = ∂ℓ/∂logp · ([v = y] − p_v).
            diag.entropy += LogitRow.addScaledSoftmax(g != 0 ? dlogits.map { $0 + r * V } : nil, z, lse: lse, V, scale: -g)
            if g != 0, let d = dlogits { d[r * V + y] += g }
            diag.sumP += Double(p); diag.count += 1
        }
        let loss = Double(rlScale) * rl + Double(sftScale) * sft
        // Each rank adds μ once per micro-batch; the count makes the reported value μ itself.
        var d: [String: Double] = ["ratio": ratioSum, "mu": Double(mu), "sft_loss": sft * Double(inverseCount(expertTokens)),
                                   "grpo_loss": rl * Double(inverseCount(rolloutTokens))]
        var c: [String: Double] = ["ratio": rlCount, "mu": 1]
        clip.into(&d, &c, tokens: rlCount)
        diag.into(&d, &c)
        return ObjectiveResult(loss: loss, diagnostics: d, diagnosticCounts: c)
    }
}

/// Objectives that train on demonstrations mixed into the rollouts: `expert_share` of each step
/// batch's sequences are training rows (`RolloutProducer` adds them after the rollouts).
public protocol DemonstrationMixing: Objective {
    var expertShare: Float { get }
}
