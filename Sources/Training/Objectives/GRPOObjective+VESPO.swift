import Foundation
import TensorCore

/// VESPO (arXiv 2602.10693; TRL's `loss_type="vespo"`, `GRPOTrainer.get_gamma_weights`): each
/// rollout's tokens are weighted by a detached Gamma-shaped function of its sequence-level
/// importance ratio w_i = exp(Σ_t m_t·log(π_θ/π_behaviour)) (a sum, not GSPO's mean),
///
///   φ(w) = exp(λ + k·log w − λ·w)   (= e^λ·w^k·e^{−λw}, so φ(1) = 1),
///   ℓ_t = −sg(φ(w_i))·A_i·log π_θ(y_t),
///
/// with (k, λ) = (`vespo_k_pos` 2, `vespo_lambda_pos` 3) where A ≥ 0, else (`vespo_k_neg` 3,
/// `vespo_lambda_neg` 2); the token log-ratios clamped to ±20 and log w to [log 1e-8, 20], λ at
/// least 1e-4, a φ beyond float32 read as 0, as TRL; w = 1 on a generation's first step and in
/// evaluation (`RolloutLogRatios`, which also gives the sums from the detached logits).
/// Aggregated as dapo; token level only (the
/// weight is per sequence already); `delta` and the clip figures do not apply; logged as
/// `vespo/phi_seq_mean`, the mean φ over the step's rollouts (a masked one's is φ(1) = 1, as
/// TRL's [B, 1] mean).
extension GRPOObjective {
    /// φ per sequence id of `input`, and (Σ φ, rollouts) over the rollouts present in it.
    func vespoWeights(_ ratios: RolloutLogRatios, _ input: ObjectiveInput) -> (phi: [Float], sum: Double, count: Double) {
        var phi = [Float](repeating: 1, count: input.sequences.count), sum = 0.0
        for s in ratios.present.sorted() {
            let nonNegative = input.sequences[s].advantage >= 0
            let k = Double(nonNegative ? vespoKPos : vespoKNeg), lambda = max(Double(nonNegative ? vespoLambdaPos : vespoLambdaNeg), 1e-4)
            let logW = min(max(ratios.clampedSum[s], log(1e-8)), 20)
            // φ in float32, as TRL's: where it overflows float32 it is read as 0 (nan_to_num), not +∞.
            let value = Float(exp(lambda + k * logW - lambda * exp(logW)))
            phi[s] = value.isFinite ? value : 0
            sum += Double(phi[s])
        }
        return (phi, sum, Double(ratios.present.count))
    }

    /// ℓ_t = −φ·A·log π_θ(y_t) and its derivative −φ·A; the live ratio (for the KL) beside it.
    @inline(__always)
    static func vespo(logp: Float, old: Float, advantage a: Float, phi: Float) -> (loss: Float, dLogp: Float, ratio: Float, clippedLow: Bool, clippedHigh: Bool) {
        (-phi * a * logp, -phi * a, expf(min(max(logp - old, -20), 20)), false, false)
    }
}
