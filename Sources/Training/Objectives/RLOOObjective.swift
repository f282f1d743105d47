import Foundation
import TensorCore

/// REINFORCE Leave-One-Out, Ahmadian et al., "Back to Basics: Revisiting REINFORCE Style
/// Optimization for Learning from Human Feedback in LLMs", arXiv 2402.14740, as TRL 1.16's
/// `RLOOTrainer._compute_loss` trains it: a whole completion is one action, so each rollout i
/// has one importance ratio, from its summed log-probs, PPO-clipped, and the loss is the mean
/// over the step's rollouts:
///
///   c_i = exp(Σ_t m_t·(log π_θ(y_t) − log π_old(y_t))),   ℓ_i = −min(c_i·A_i, clip(c_i, 1 − ε_low, 1 + ε_high)·A_i),
///   L = (1/B)·Σ_i ℓ_i,     ∂L/∂log π_θ(y_t) = m_t·(∂ℓ_i/∂log c_i)/B = m_t·(−A_i·c_i or 0)/B,
///
/// B the rollouts of the step batch (all ranks; one masked by mask_truncated_completions counts
/// with ratio 1 and no gradient, as TRL's mean over its [B] losses), A_i the leave-one-out
/// advantage the producer formed with the KL penalty in the reward (`LeaveOneOutAdvantages`),
/// detached. π_old: on a generation's first step, and in evaluation, the current weights
/// themselves, detached (ratio 1: TRL's old log-probs are a forward of the same weights); on a
/// reused generation's later steps (`num_iterations`, `steps_per_generation`) the sampler's
/// log-probs stored with the rollout. The logits are divided by the rollout temperature first
/// (`Trainer.logitTemperature`), as TRL's are. The log-ratio is clamped at ±20 as `PPOClippedToken`
/// clamps grpo's (TRL has no clamp; in Double exp would stay finite to 709).
/// Arguments (TRL's names and defaults): `beta` 0.05 (the KL penalty's weight, in the reward;
/// 0: no reference model), `epsilon` 0.2, `epsilon_high` (= epsilon), `normalize_advantages`
/// false, `reward_clip_range` (none; `lo,hi`: each rollout's weighted reward clamped before the KL penalty). Figures (TRL's): `clip_ratio/low_mean` (rollouts with c < 1 − ε_low and A < 0),
/// `clip_ratio/high_mean` (c > 1 + ε_high and A > 0), `clip_ratio/region_mean`, as means over
/// rollouts; `entropy` per trained token; `kl` comes from the producer, where the reference runs.
public final class RLOOObjective: Objective, DetachedEvaluable, RolloutPolicyObjective {
    public let name = "rloo"
    public let trainerName = "RLOOTrainer"
    public let requirements: ObjectiveRequirements
    public let epsilonLow: Float, epsilonHigh: Float, beta: Float
    /// TRL's `normalize_advantages`: the generation's advantages standardised (`LeaveOneOutAdvantages`).
    public let normalizeAdvantages: Bool
    /// TRL's `reward_clip_range`: the weighted reward clamped to it before the KL penalty.
    public let rewardClipRange: ClosedRange<Double>?

    public init(epsilon: Float = 0.2, epsilonHigh: Float? = nil, beta: Float = 0.05, normalizeAdvantages: Bool = false,
                rewardClipRange: ClosedRange<Double>? = nil) throws {
        try checkArg(epsilon >= 0 && epsilon < 1, "rloo", "epsilon must be in [0, 1), got \(epsilon)")
        try checkArg((epsilonHigh ?? epsilon) >= 0, "rloo", "epsilon_high must be >= 0, got \(epsilonHigh ?? epsilon)")
        try checkArg(beta >= 0, "rloo", "beta must be >= 0, got \(beta)")
        epsilonLow = epsilon; self.epsilonHigh = epsilonHigh ?? epsilon; self.beta = beta
        self.normalizeAdvantages = normalizeAdvantages; self.rewardClipRange = rewardClipRange
        var r = ObjectiveRequirements(referenceModel: beta > 0, behaviourLogProbs: true)
        r.referenceInStep = false   // the reference scores the rollouts once, in the producer
        r.rollouts = true
        requirements = r
    }

    /// TRL's `reward_clip_range` as `lo,hi` (a YAML list reads so too): two finite numbers, lo ≤ hi;
    /// recorded among the resolved arguments only when given.
    static func rewardClipRange(_ args: inout ObjectiveArgs) throws -> ClosedRange<Double>? {
        args.used.insert("reward_clip_range")
        guard let given = args.values["reward_clip_range"] else { return nil }
        let bounds = given.split(separator: ",", omittingEmptySubsequences: false).map { Double(decimal: $0.trimmingCharacters(in: .whitespaces)) }
        guard bounds.count == 2, let lo = bounds[0], let hi = bounds[1], lo.isFinite, hi.isFinite, lo <= hi else {
            throw ObjectiveError("objective rloo: reward_clip_range=\(RecipeError.quote(given)) must be two finite numbers lo,hi with lo <= hi")
        }
        _ = args.noted("reward_clip_range", "\(lo),\(hi)")
        return lo...hi
    }

    /// The loss and gradient, π_old on a generation's first step read from `detached` (the
    /// trainer passes the logits themselves; the finite-difference checks hold it fixed). Without
    /// `dlogits`, the loss alone: pass 2 then only measures the entropy, with no scratch gradient.
    public func evaluate(_ input: ObjectiveInput, detached: UnsafePointer<Float>, dlogits: UnsafeMutablePointer<Float>?) -> ObjectiveResult {
        let rollouts = input.sequences.count
        // Pass 1: each loss row's log-prob and π_old; each rollout's summed log-ratio and trained tokens.
        let rows = RolloutTokenRows(input, detached: detached, objective: name), present = rows.present
        var logRatio = [Double](repeating: 0, count: rollouts), tokens = logRatio, expected = logRatio
        for r in 0..<input.rows where input.sequenceId[r] >= 0 && input.mask[r] != 0 {
            let s = Int(input.sequenceId[r])
            logRatio[s] += Double(input.mask[r]) * Double(rows.logp[r] - rows.old[r])
            tokens[s] += Double(input.mask[r])
            expected[s] = Double(input.sequenceLossTokens[r])
        }
        // Per rollout: ℓ_i and ∂ℓ_i/∂log c_i. A rollout with no trained token has ratio 1 and no gradient.
        let perRollout = rollouts > 0 ? 1 / Double(rollouts) : 0
        var slope = [Float](repeating: 0, count: rollouts)
        var total = 0.0, clip = ClipCounts()
        for s in present.sorted() {
            precondition(tokens[s] == expected[s], "objective rloo: a rollout split between calls")
            let term = sequenceTerm(logRatio: logRatio[s], advantage: Double(input.sequences[s].advantage))
            total += perRollout * term.loss
            slope[s] = Float(perRollout * term.slope)
            clip.add(low: term.clippedLow, high: term.clippedHigh)
        }
        // Pass 2: each row's gradient through its log-prob, into dlogits.
        var diag = TokenDiagnostics()
        for r in 0..<input.rows where input.mask[r] != 0 {
            rows.addGradient(input, row: r, input.mask[r] * slope[Int(input.sequenceId[r])], dlogits: dlogits, diag: &diag)
        }
        var d: [String: Double] = [:], c: [String: Double] = [:]
        clip.into(&d, &c, tokens: Double(present.count))
        diag.into(&d, &c)
        return ObjectiveResult(loss: total, diagnostics: d, diagnosticCounts: c)
    }

    /// PPO's clipped term of one rollout (`PPOClippedToken.loss`'s, on the summed log-ratio) in
    /// Double: c_i is the exp of a sum over the rollout's tokens, and in float32 its round-off
    /// grows with that sum. ℓ = −min(c·A, clip(c)·A); the slope in log c of the term min picks
    /// (−A·c, or 0 where the clipped one is constant; half of it exactly on a bound, as torch
    /// differentiates min and clamp there: `PPOClippedToken.loss`); the clip flags as TRL counts them.
    func sequenceTerm(logRatio: Double, advantage a: Double) -> (loss: Double, slope: Double, clippedLow: Bool, clippedHigh: Bool) {
        let lo = 1 - Double(epsilonLow), hi = 1 + Double(epsilonHigh)
        let c1 = exp(min(max(logRatio, -20), 20)), c2 = min(max(c1, lo), hi)
        let l1 = c1 * a, l2 = c2 * a
        let share = PPOClippedToken.minShare(l1, l2, first: 1, second: c1 > lo && c1 < hi ? 1 : 0)
        return (-min(l1, l2), -a * c1 * share, c1 < lo && a < 0, c1 > hi && a > 0)
    }
}
