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
/// `sampling_per_token_logps` (its `old_per_token_logps` without vLLM). On a generation's first
/// step, and in evaluation, the rollouts were sampled by the current weights: KL_i = 0 by
/// definition (`StepContext.onPolicy`), as TRL's, whose on-policy old log-probs are the live
/// ones detached — not the sampler's decode-versus-forward rounding (±1e-7), which made δ ≈ 0
/// mask at random, and differently at another rank count. Only δ < 0 masks anything there.
/// The decision reads
/// the detached logits (the unperturbed ones in the finite-difference checks) and needs every
/// token of a rollout in one call, which the trainer guarantees (it never splits a sequence).
/// Logged as `off_policy_mask_ratio`: the share of rollouts with loss tokens it masked.
extension GRPOObjective {
    /// Per sequence id of `input` (the step batch's), whether its PPO term counts; nil without δ.
    func offPolicyKept(_ input: ObjectiveInput, detached: UnsafePointer<Float>) -> (kept: [Bool], masked: Double, rollouts: Double)? {
        guard let threshold = offPolicyMaskThreshold else { return nil }
        let V = input.vocab, n = input.sequences.count
        var drift = [Double](repeating: 0, count: n), tokens = drift, expected = drift
        for r in 0..<input.rows where input.mask[r] != 0 {
            let s = Int(input.sequenceId[r])
            precondition(s >= 0 && s < n, "objective grpo needs the step batch's sequences (advantages) in its input")
            let y = lossTarget(input, r, name)
            let z = detached + r * V
            let logp = z[y] - SoftmaxKernels.logSumExp(z, count: V)
            if !input.context.onPolicy { drift[s] += Double(input.mask[r]) * Double(PPOClippedToken.behaviourLogProb(input, row: r, live: logp) - logp) }
            tokens[s] += Double(input.mask[r])
            expected[s] = Double(input.sequenceLossTokens[r])
        }
        var kept = [Bool](repeating: true, count: n), masked = 0.0, rollouts = 0.0
        for s in 0..<n where tokens[s] > 0 {
            precondition(tokens[s] == expected[s], "objective grpo (off_policy_mask_threshold): a rollout split between calls")
            rollouts += 1
            // TRL keeps A ≥ 0 or KL ≤ δ, with the KL in the policy's precision (float32).
            if !(input.sequences[s].advantage >= 0 || Float(drift[s] / tokens[s]) <= threshold) { kept[s] = false; masked += 1 }
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
