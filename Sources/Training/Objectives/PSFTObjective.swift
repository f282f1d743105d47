import Foundation
import TensorCore

/// Proximal SFT, "Proximal Supervised Fine-Tuning", arXiv 2508.17784
/// (code: `zwhong714/PSFT`, `core_algos.py::compute_policy_loss_vanilla`
/// with `AdvantageEstimator.PSFT`: advantage 1 on every demonstration token).
///
///   r_t = exp(clamp(log π_θ(y_t) − log π_old(y_t), −20, 20)),
///   L = Σ_t M_t · −min(r_t, clip(r_t, 1 − ε_low, 1 + ε_high)) / N_global  = −min(r, 1 + ε_high) for A = 1,
///   ∂L/∂z = M·r·(softmax − onehot(y)) / N_global if r ≤ 1 + ε_high, else 0.
///
/// Detached: the old policy's log-probs (`input.oldLogits`, a snapshot the trainer refreshes
/// every `refresh` optimizer steps). The dual clip is inactive for A > 0 and there is no
/// reference KL. Normalisation: "token-mean" per PPO mini-batch; one optimizer step here is one
/// PPO mini-batch update, so the global loss-token count of the step.
///
/// `refresh` (default 8): `run_psft.sh` takes 64 prompts per snapshot in mini-batches of 8,
/// i.e. 8 updates per old-policy snapshot, the first with r = 1. `refresh=1` would make every
/// step start at r = 1 and PSFT reduce to NLL, so 1 is allowed but not the default.
/// When `input.oldLogits` is nil the old policy is taken to be the current weights (r = 1): exact
/// on a refresh step, which lets the trainer skip the snapshot's forward there.
/// Arguments: `clip_low` ε_low (0.2, in [0, 1)), `clip_high` ε_high (0.28, ≥ 0), `refresh` (8, ≥ 1).
/// Diagnostics: clip fraction (tokens with r > 1 + ε_high, whose gradient is zero), mean ratio.
public final class PSFTObjective: Objective, DetachedEvaluable {
    public let name = "psft"
    public let requirements: ObjectiveRequirements
    public let clipLow: Float, clipHigh: Float, refresh: Int

    public init(clipLow: Float = 0.2, clipHigh: Float = 0.28, refresh: Int = 8) throws {
        try checkArg(clipLow >= 0 && clipLow < 1, "psft", "clip_low must be in [0, 1), got \(clipLow)")
        try checkArg(clipHigh >= 0, "psft", "clip_high must be >= 0, got \(clipHigh)")
        try checkArg(refresh >= 1, "psft", "refresh must be >= 1 (optimizer steps per old-policy snapshot), got \(refresh)")
        self.clipLow = clipLow; self.clipHigh = clipHigh; self.refresh = refresh
        requirements = ObjectiveRequirements(oldPolicyRefresh: refresh)
    }

    public func evaluate(_ input: ObjectiveInput, detached: UnsafePointer<Float>,
                         dlogits: UnsafeMutablePointer<Float>?) -> ObjectiveResult {
        let V = input.vocab
        let scale = inverseCount(input.context.globalLossTokens)
        let old = input.oldLogits ?? detached
        let lo = 1 - clipLow, hi = 1 + clipHigh
        var diag = TokenDiagnostics()
        var total = 0.0, clipped = 0.0, sumRatio = 0.0
        for r in 0..<input.rows where input.mask[r] != 0 {
            let y = lossTarget(input, r, name)
            let z = input.logits + r * V, zo = old + r * V
            let lse = SoftmaxKernels.logSumExp(z, count: V)
            let logp = z[y] - lse
            let logpOld = zo[y] - SoftmaxKernels.logSumExp(zo, count: V)
            let ratio = expf(min(max(logp - logpOld, -20), 20))
            let m = input.mask[r]
            // −min(r, clip(r, lo, hi)): the unclipped branch (gradient r·∂log p) wins unless r > hi.
            let surrogate = min(ratio, min(max(ratio, lo), hi))
            total += Double(m * -surrogate)
            let active = ratio <= hi
            if !active { clipped += 1 }
            sumRatio += Double(ratio)
            let a = active ? m * ratio * scale : 0
            diag.entropy += LogitRow.addScaledSoftmax(a != 0 ? dlogits.map { $0 + r * V } : nil, z, lse: lse, V, scale: a)
            if a != 0, let d = dlogits { d[r * V + y] -= a }
            diag.sumP += Double(expf(logp)); diag.count += 1
        }
        var d: [String: Double] = ["clip_frac": clipped, "ratio": sumRatio]
        var c: [String: Double] = ["clip_frac": diag.count, "ratio": diag.count]
        diag.into(&d, &c)
        return ObjectiveResult(loss: total * Double(scale), diagnostics: d, diagnosticCounts: c)
    }
}
