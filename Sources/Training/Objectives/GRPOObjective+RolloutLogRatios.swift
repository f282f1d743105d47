import Foundation
import TensorCore

/// Each rollout's summed log-ratio to its sampler, Σ_t m_t·(log π_θ(y_t) − log π_behaviour(y_t)),
/// from the detached logits (the unperturbed ones in the finite-difference checks): what the
/// off-policy mask (its mean, negated: the drift) and VESPO's weight (its sum, each token's
/// term clamped to ±20) read, taken in one pass over the call's rows. A rollout's tokens are all
/// in one call, which the trainer guarantees (it never splits a sequence). On a generation's
/// first step, and in evaluation, the rollouts were sampled by the current weights: every sum
/// is 0 by definition (`StepContext.onPolicy`), as TRL's on-policy old log-probs are the live
/// ones detached — not the decode-versus-forward rounding — and the pass reads no logits.
struct RolloutLogRatios {
    /// Per sequence id of the step batch: Σ m·log-ratio, the same with each term clamped to
    /// ±20, and Σ m (loss tokens here).
    var sum: [Double], clampedSum: [Double], tokens: [Double]
    /// Sequence ids with a row in this call (a masked rollout has rows but no loss token).
    var present: Set<Int>
}

extension GRPOObjective {
    func rolloutLogRatios(_ input: ObjectiveInput, detached: UnsafePointer<Float>, _ feature: String) -> RolloutLogRatios {
        let V = input.vocab, n = input.sequences.count
        var r = RolloutLogRatios(sum: [Double](repeating: 0, count: n), clampedSum: [Double](repeating: 0, count: n),
                                 tokens: [Double](repeating: 0, count: n), present: [])
        var expected = [Double](repeating: 0, count: n)
        for row in 0..<input.rows where input.sequenceId[row] >= 0 {
            let s = Int(input.sequenceId[row])
            precondition(s < n, "objective grpo needs the step batch's sequences (advantages) in its input")
            r.present.insert(s)
            guard input.mask[row] != 0 else { continue }
            r.tokens[s] += Double(input.mask[row])
            expected[s] = Double(input.sequenceLossTokens[row])
            if input.context.onPolicy { continue }
            let y = lossTarget(input, row, name)
            let z = detached + row * V
            let logp = z[y] - SoftmaxKernels.logSumExp(z, count: V)
            let logRatio = logp - PPOClippedToken.behaviourLogProb(input, row: row, live: logp, detached: detached)
            r.sum[s] += Double(input.mask[row]) * Double(logRatio)
            r.clampedSum[s] += Double(input.mask[row]) * Double(min(max(logRatio, -20), 20))
        }
        for s in r.present where r.tokens[s] != expected[s] {
            preconditionFailure("objective grpo (\(feature)): a rollout split between calls")
        }
        return r
    }
}
