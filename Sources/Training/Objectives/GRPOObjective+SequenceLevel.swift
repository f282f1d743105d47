import Foundation
import TensorCore

/// GSPO, Zheng et al., "Group Sequence Policy Optimization", arXiv 2507.18071, §4.1 (Eq. 7), as
/// TRL's `GRPOTrainer` computes it with `importance_sampling_level="sequence"`: one importance
/// ratio per rollout i, the geometric mean of its tokens' ratios,
///
///   s_i = exp( Σ_t m_t·(log π_θ(y_t) − log π_behaviour(y_t)) / Σ_t m_t ),
///   ℓ_t = −min(s_i·A_i, clip(s_i, 1 − ε_low, 1 + ε_high)·A_i) + β·s_i·k3_t   (t in rollout i),
///
/// every token of rollout i carrying the same PPO value, aggregated by `loss_type` as token
/// losses are (TRL warns that bnpo, dr_grpo and dapo weigh a rollout by its length; GSPO's own
/// setting is `loss_type=grpo`). Because s_i depends on every token of i, the gradient of token
/// u's log-prob gathers the whole rollout's weights:
///
///   ∂L/∂log π_θ(y_u) = w_u·β·s_i·k3'_u + (m_u / Σ m)·Σ_{t∈i} w_t·(∂PPO/∂log s_i + β·s_i·k3_t),
///
/// (the second term through log s_i; with `use_bias_correction_kl=false` the KL term is β·k3_t
/// and has no part in it). A rollout is whole within one objective call (the trainer never splits a
/// sequence between micro-batches), which the sums below check. `clip_ratio/*` and `ratio` are
/// means over rollouts, masked ones included, as TRL's metrics of a [B, 1] ratio; `delta` caps
/// s_i in the unclipped term.
extension GRPOObjective {
    func sequenceLevelLossAndGradient(_ input: ObjectiveInput, detached: UnsafePointer<Float>, dlogits: UnsafeMutablePointer<Float>) -> ObjectiveResult {
        let V = input.vocab
        let rollouts = input.sequences.count
        let ref = beta > 0 ? requireReference(input, name) : nil
        // Pass 1: each loss row's log-prob, log-sum-exp and k3; each rollout's Σ m·log ratio and Σ m.
        var lse = [Float](repeating: 0, count: input.rows), logp = lse, k3 = lse, k3Slope = lse
        var logRatioSum = [Double](repeating: 0, count: rollouts), tokens = logRatioSum, expected = logRatioSum
        for r in 0..<input.rows where input.mask[r] != 0 {
            let s = Int(input.sequenceId[r])
            precondition(s >= 0 && s < rollouts, "objective grpo needs the step batch's sequences (advantages) in its input")
            let y = lossTarget(input, r, name)
            let z = input.logits + r * V
            lse[r] = SoftmaxKernels.logSumExp(z, count: V)
            logp[r] = z[y] - lse[r]
            let old = PPOClippedToken.behaviourLogProb(input, row: r, live: logp[r], detached: detached)
            logRatioSum[s] += Double(input.mask[r]) * Double(logp[r] - old)
            tokens[s] += Double(input.mask[r])
            expected[s] = Double(input.sequenceLossTokens[r])
            if let ref {
                let k = PPOClippedToken.k3(reference: ref + r * V, vocab: V, target: y, logp: logp[r])
                k3[r] = k.value; k3Slope[r] = k.dLogp
            }
        }
        // Per rollout: its ratio and PPO term (as one token whose log ratio is the mean), and
        // S_i = Σ_t w_t·∂ℓ_t/∂log s_i, which every token of it shares through log s_i.
        var ppo = [(loss: Float, dLogp: Float, ratio: Float, clippedLow: Bool, clippedHigh: Bool)?](repeating: nil, count: rollouts)
        var throughRatio = [Double](repeating: 0, count: rollouts)
        var clip = ClipCounts(), ratioSum = 0.0, seen = 0.0
        for s in 0..<rollouts where tokens[s] > 0 {
            precondition(tokens[s] == expected[s], "objective grpo (importance_sampling_level=sequence): a rollout split between calls")
            let p = policyTerm(logp: Float(logRatioSum[s] / tokens[s]), old: 0, advantage: input.sequences[s].advantage)
            ppo[s] = p
            clip.add(p); ratioSum += Double(p.ratio); seen += 1
        }
        // A rollout with no loss token here (masked by mask_truncated_completions) still counts in
        // TRL's [B, 1] figures, with ratio exp(0/1) = 1, unclipped.
        var present = Set<Int32>()
        for r in 0..<input.rows where input.sequenceId[r] >= 0 && tokens[Int(input.sequenceId[r])] == 0 { present.insert(input.sequenceId[r]) }
        ratioSum += Double(present.count); seen += Double(present.count)
        var total = 0.0, klSum = 0.0
        var weight = [Float](repeating: 0, count: input.rows)   // each loss row's aggregation weight, read again in pass 2
        let keep = highEntropyRows(input)   // top_entropy_quantile: the PPO term of these tokens only
        // off_policy_mask_threshold: the PPO term of these rollouts only.
        let offPolicy = offPolicyKept(offPolicyMaskThreshold == nil ? nil : rolloutLogRatios(input, detached: detached, "off_policy_mask_threshold"), input)
        for r in 0..<input.rows where input.mask[r] != 0 {
            weight[r] = input.mask[r] * tokenWeight(tokens: input.sequenceLossTokens[r], rollouts: rollouts,
                                                    globalTokens: input.context.globalLossTokens, tokensPerStep: input.context.lossTokensPerStep)
            let s = Int(input.sequenceId[r]), p = ppo[s]!, w = weight[r], kept = keep?[r] != false && offPolicy?.kept[s] != false
            var loss = kept ? p.loss : 0, dRatio = kept ? p.dLogp : 0   // ∂ℓ_t/∂log s_i
            if ref != nil {
                let c = biasCorrectionKL ? p.ratio : 1
                loss += beta * c * k3[r]
                if biasCorrectionKL { dRatio += beta * p.ratio * k3[r] }   // ∂(s·k3)/∂log s = s·k3
                klSum += Double(c * k3[r])
            }
            total += Double(w * loss)
            throughRatio[s] += Double(w * dRatio)
        }
        // Pass 2: each row's gradient in its log-prob, into dlogits.
        var diag = TokenDiagnostics()
        let bonus = appliedEntropyCoef / entropyBonusTokens(input), measureKept = entropyBonusEnabled && keep != nil
        var keptEntropy = 0.0, keptTokens = 0.0
        for r in 0..<input.rows where input.mask[r] != 0 {
            let s = Int(input.sequenceId[r]), p = ppo[s]!
            let y = lossTarget(input, r, name)
            let z = input.logits + r * V
            var g = Float(throughRatio[s] / tokens[s]) * input.mask[r]
            if ref != nil { g += weight[r] * beta * (biasCorrectionKL ? p.ratio : 1) * k3Slope[r] }
            diag.entropy += LogitRow.addScaledSoftmax(g != 0 ? dlogits + r * V : nil, z, lse: lse[r], V, scale: -g)
            if g != 0 { dlogits[r * V + y] += g }
            diag.sumP += Double(expf(logp[r])); diag.count += 1
            if keep?[r] != false && (bonus != 0 || measureKept) {   // the entropy bonus, as at the token level
                let e = addEntropyBonus(input, row: r, lse: lse[r], coef: bonus, dlogits: dlogits)
                total += e.loss; keptEntropy += e.entropy; keptTokens += 1
            }
        }
        var d: [String: Double] = ["ratio": ratioSum]
        var c: [String: Double] = ["ratio": seen]
        if lossType != .sapo { clip.into(&d, &c, tokens: seen) }   // none for sapo, as TRL
        if beta > 0 { d["kl"] = klSum; c["kl"] = diag.count }
        diag.into(&d, &c)
        offPolicy.into(&d, &c)
        if measureKept { d[Self.keptEntropyKey] = keptEntropy; c[Self.keptEntropyKey] = keptTokens }
        return ObjectiveResult(loss: total, diagnostics: d, diagnosticCounts: c)
    }
}
