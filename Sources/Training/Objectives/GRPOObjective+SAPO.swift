import Foundation

/// SAPO's soft gate (Gao et al., "Soft Adaptive Policy Optimization", arXiv 2511.20347; TRL's
/// `loss_type="sapo"`): in place of PPO's hard clip, the ratio passes through a sigmoid centred
/// at 1,
///
///   ℓ = −(4/τ)·σ(τ·(c − 1))·A,   τ = `sapo_temperature_pos` (1.0) where A > 0, else
///                                    `sapo_temperature_neg` (1.05),
///
/// whose gradient in log π_θ, −4·σ(1 − σ)·c·A, is PPO's −c·A at c = 1 and fades smoothly as
/// the ratio leaves 1 (faster for negative advantages: τ_neg > τ_pos), instead of stopping at
/// 1 ± ε. Per token, or per rollout with `importance_sampling_level=sequence` (c is then GSPO's
/// s_i); aggregated as `grpo` (the mean over rollouts of token means, as TRL); `delta` and the
/// clip figures do not apply (TRL logs none for sapo). c's log is clamped to ±20, as the other
/// terms'.
extension GRPOObjective {
    @inline(__always)
    static func sapo(logp: Float, old: Float, advantage a: Float, temperaturePos: Float, temperatureNeg: Float)
        -> (loss: Float, dLogp: Float, ratio: Float, clippedLow: Bool, clippedHigh: Bool) {
        let c = expf(min(max(logp - old, -20), 20))
        let tau = a > 0 ? temperaturePos : temperatureNeg
        let s = 1 / (1 + expf(-tau * (c - 1)))
        return (-(4 / tau) * s * a, -4 * s * (1 - s) * c * a, c, false, false)
    }

    /// The policy term of one token (or of a rollout's mean log-ratio at the sequence level):
    /// SAPO's gate or PPO's clip (with `delta`).
    @inline(__always)
    func policyTerm(logp: Float, old: Float, advantage a: Float) -> (loss: Float, dLogp: Float, ratio: Float, clippedLow: Bool, clippedHigh: Bool) {
        lossType == .sapo
            ? Self.sapo(logp: logp, old: old, advantage: a, temperaturePos: sapoTemperaturePos, temperatureNeg: sapoTemperatureNeg)
            : PPOClippedToken.loss(logp: logp, old: old, advantage: a, low: 1 - epsilonLow, high: 1 + epsilonHigh, delta: delta)
    }
}
