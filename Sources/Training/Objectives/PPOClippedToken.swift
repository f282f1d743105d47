import Foundation
import TensorCore

/// The per-token policy-gradient terms that GRPO (arXiv 2402.03300, §4.1, Eq. 3) and the
/// objectives built on it (CHORD, UFT, Prefix-RFT, ReLIFT's RL step) share, in one place so
/// they cannot drift apart:
///
///   c1 = exp(clamp(log π_θ(y_t) − log π_old(y_t), −20, 20)),   c2 = clip(c1, 1 − ε_low, 1 + ε_high),
///   ℓ_t = −min(c1·A, c2·A)                                     (PPO's clip, arXiv 1707.06347, §3;
///                                                                 DAPO's decoupled ε, arXiv 2503.14476, §3.1)
///   k3_t = e^{d} − d − 1,   d = log π_ref(y_t) − log π_θ(y_t)   (the KL estimator: GRPO adds β·c1·k3_t, or
///                                                                 β·k3_t without use_bias_correction_kl; UFT β·k3_t)
///
/// π_old is the sampler's log-prob stored with a rollout on a reused generation's later steps,
/// the live one, detached, on a generation's first step and where the batch has none (ratio 1,
/// gradient −A·∇log π_θ; `behaviourLogProb`). The log-ratio clamp (verl, Trinity-RFT) only keeps
/// exp finite.
enum PPOClippedToken {
    /// ℓ_t; its derivative in log π_θ (that of the term min picks: −A·c1 through the unclipped
    /// term below δ, or through the clipped one strictly inside (lo, hi), else 0; half of each
    /// where the two terms are equal); c1; whether the token is clipped below (c1 < low with A < 0)
    /// or above (c1 > high with A > 0), as TRL's `clip_ratio/low_mean` and `high_mean` count.
    /// `delta` (TRL's, INTELLECT-2's two-sided clip, arXiv 2505.07291 §3): the unclipped term's
    /// ratio is min(c1, δ), constant above δ; the clip flags read it, as TRL's metrics do.
    @inline(__always)
    static func loss(logp: Float, old: Float, advantage a: Float, low lo: Float, high hi: Float, delta: Float = .infinity)
        -> (loss: Float, dLogp: Float, ratio: Float, clippedLow: Bool, clippedHigh: Bool) {
        let c1 = expf(min(max(logp - old, -20), 20))
        let c2 = min(max(c1, lo), hi)
        let cd = min(c1, delta)
        // torch's gradient of −min(cd·A, c2·A) (TRL's, Trinity-RFT's, verl's): through the smaller
        // term, half through each where they are equal; torch.clamp passes none on its bounds —
        // the clipped term strictly inside (lo, hi), the unclipped one strictly below δ (where δ
        // made it the larger: δ < c1 < hi with A < 0, the clipped term's). Inside (lo, hi) the two
        // terms are equal and both pass: the whole gradient. Exactly on a bound only half passes:
        // on a generation's first step the ratio is 1, so with ε = 0 on either side every token.
        let l1 = cd * a, l2 = c2 * a
        let share = minShare(l1, l2, first: c1 < delta ? 1 : 0, second: c1 > lo && c1 < hi ? 1 : 0)
        return (-min(l1, l2), -a * c1 * share, c1, cd < lo && a < 0, cd > hi && a > 0)
    }

    /// torch's share of min(l1, l2)'s gradient that reaches c1: through the smaller term (`first`
    /// or `second`: 1 where that term passes c1's gradient, 0 where its clamp is constant), half
    /// through each where they are equal.
    @inline(__always)
    static func minShare<T: BinaryFloatingPoint>(_ l1: T, _ l2: T, first: T, second: T) -> T {
        l1 < l2 ? first : l2 < l1 ? second : (first + second) / 2
    }

    /// Dual clip for A < 0 (Ye et al., "Mastering Complex Control in MOBA Games with Deep
    /// Reinforcement Learning", arXiv 1912.09729, §3.2; verl's and Trinity-RFT's `clip_ratio_c`):
    /// ℓ = min(ℓ, −A·c), so a token whose ratio has grown past c under a negative advantage adds
    /// a bounded loss and no gradient. (TRL's GRPO has none; chord applies it as Trinity does.)
    @inline(__always)
    static func dualClipped(_ ppo: (loss: Float, dLogp: Float, ratio: Float, clippedLow: Bool, clippedHigh: Bool),
                            advantage a: Float, c: Float) -> (loss: Float, dLogp: Float, ratio: Float, clippedLow: Bool, clippedHigh: Bool) {
        guard a < 0, ppo.loss > -a * c else { return ppo }
        return (-a * c, 0, ppo.ratio, ppo.clippedLow, ppo.clippedHigh)
    }

    /// log π_old of row `r`'s target: on a generation's first step (and in evaluation) the live
    /// log-prob, detached (read at `detached`, the unperturbed logits in the finite-difference
    /// checks) — the rollouts were sampled by these weights, and TRL's on-policy old log-probs are
    /// the live ones detached, so the ratio is exactly 1, not the decode's rounding of it (which
    /// with ε = 0 clipped tokens at random); otherwise the behaviour log-prob the producer
    /// stored, else `logp`.
    @inline(__always)
    static func behaviourLogProb(_ input: ObjectiveInput, row r: Int, live logp: Float, detached: UnsafePointer<Float>) -> Float {
        if input.context.onPolicy {
            return LogitRow.detachedLogProb(detached, input.logits, row: r, input.vocab, target: Int(input.targets[r]), liveLogP: logp)
        }
        return input.behaviourLogProbs.isEmpty ? logp : input.behaviourLogProbs[r]
    }

    /// k3_t against the reference logits `zr` of one row, and its derivative in log π_θ (1 − e^{d}).
    @inline(__always)
    static func k3(reference zr: UnsafePointer<Float>, vocab V: Int, target y: Int, logp: Float) -> (value: Float, dLogp: Float) {
        let d = (zr[y] - SoftmaxKernels.logSumExp(zr, count: V)) - logp, ed = expf(d)
        return (ed - d - 1, 1 - ed)
    }
}

/// The clipped shares TRL's `GRPOTrainer` logs, as token means over every token the PPO term
/// saw (global counts, so no rank count changes them): `clip_ratio/low_mean`,
/// `clip_ratio/high_mean` and `clip_ratio/region_mean` (either). TRL 1.16's `low_min` /
/// `high_max` are per-sequence extremes within one micro-batch (gathered over processes),
/// averaged over a step's micro-batches: they would change with the micro-batch size, so they
/// are not logged.
struct ClipCounts {
    var low = 0.0, high = 0.0

    @inline(__always)
    mutating func add(_ ppo: (loss: Float, dLogp: Float, ratio: Float, clippedLow: Bool, clippedHigh: Bool)) {
        add(low: ppo.clippedLow, high: ppo.clippedHigh)
    }

    @inline(__always)
    mutating func add(low clippedLow: Bool, high clippedHigh: Bool) {
        if clippedLow { low += 1 }
        if clippedHigh { high += 1 }
    }

    /// Adds the three shares to an objective's diagnostics over `tokens` PPO tokens.
    func into(_ d: inout [String: Double], _ c: inout [String: Double], tokens: Double) {
        for (key, value) in [("clip_ratio/low_mean", low), ("clip_ratio/high_mean", high), ("clip_ratio/region_mean", low + high)] {
            d[key] = value; c[key] = tokens
        }
    }
}
