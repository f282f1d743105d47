import Foundation
import TensorCore

/// TRL's `off_policy_mask_threshold` δ: Off-Policy Sequence Masking (DeepSeek-AI, "DeepSeek-V3.2",
/// arXiv 2512.02556, §3.1, Eq. 9). A rollout whose advantage is negative and whose sampling
/// policy has drifted from the current one by more than δ,
///
///   KL_i = Σ_t m_t·(log π_behaviour(y_t) − sg(log π_θ(y_t))) / max(Σ_t m_t, 1) > δ,
///
/// drops its policy-gradient term: negative samples the current policy would hardly produce
/// are where off-policy updates destabilise training. The KL term, the normalisers and the
/// figures keep every token, as TRL's `per_token_loss * off_policy_mask` before `+ β·kl`
/// (`GRPOTrainer.get_off_policy_mask`). π_behaviour is the sampler's stored log-probs, TRL's
/// `sampling_per_token_logps` (its `old_per_token_logps` without vLLM). The sums come from
/// `RolloutLogRatios` (the detached logits; 0 on a generation's first step and in evaluation,
/// as TRL's on-policy KL — the decode's rounding made δ ≈ 0 mask at random, and differently at
/// another rank count). Only δ < 0 masks anything on-policy.
/// Logged as `off_policy_mask_ratio`: the share of rollouts with loss tokens it masked.
extension GRPOObjective {
    /// Per sequence id of `input` (the step batch's), whether its PPO term counts; nil without δ.
    func offPolicyKept(_ ratios: RolloutLogRatios?, _ input: ObjectiveInput) -> (kept: [Bool], masked: Double, rollouts: Double)? {
        guard let threshold = offPolicyMaskThreshold, let ratios else { return nil }
        var kept = [Bool](repeating: true, count: input.sequences.count), masked = 0.0, rollouts = 0.0
        for s in ratios.present.sorted() where ratios.tokens[s] > 0 {
            rollouts += 1
            // TRL keeps A ≥ 0 or KL ≤ δ, the KL (the drift, sampler minus current: the log-ratio
            // negated) in the policy's precision (float32).
            if !(input.sequences[s].advantage >= 0 || Float(-ratios.sum[s] / ratios.tokens[s]) <= threshold) { kept[s] = false; masked += 1 }
        }
        return (kept, masked, rollouts)
    }
}

extension Optional where Wrapped == (kept: [Bool], masked: Double, rollouts: Double) {
    /// Adds `off_policy_mask_ratio` (masked rollouts over rollouts with loss tokens).
    func into(_ d: inout [String: Double], _ c: inout [String: Double]) {
        guard let m = self else { return }
        d["off_policy_mask_ratio"] = m.masked; c["off_policy_mask_ratio"] = m.rollouts
    }
}
