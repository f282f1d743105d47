import Foundation
import TensorCore

/// Group Relative Policy Optimization, Shao et al., "DeepSeekMath", arXiv 2402.03300, §4.1
/// (Eq. 3), with the loss aggregations of TRL's `GRPOTrainer._compute_loss`
/// (`loss_type`), DAPO's decoupled clip (Yu et al., arXiv 2503.14476, §3.1) and Dr.GRPO's
/// constant normaliser (Liu et al., arXiv 2503.20783, §3.1). Per completion token t of rollout i:
///
///   c1 = exp(clamp(log π_θ(y_t) − log π_behaviour(y_t), −20, 20)),   c2 = clip(c1, 1 − ε_low, 1 + ε_high),
///   ℓ_t = −min(c1·A_i, c2·A_i) + β·c1·k3_t,   k3_t = e^{d} − d − 1,  d = log π_ref(y_t) − log π_θ(y_t),
///
/// the KL term weighted by the importance ratio c1 (DeepSeek-V3.2, arXiv 2512.02556, §3.1, Eq. 7:
/// the unbiased reverse-KL gradient; TRL 1.16's `use_bias_correction_kl`, on by default): its
/// derivative in log π_θ is β·c1·(log π_θ − log π_ref), where k3's alone is β·(1 − e^{d}), even
/// on-policy where c1 = 1. `use_bias_correction_kl=false` drops c1 (β·k3_t, as TRL < 1.16).
///
/// with A_i the rollout's group advantage (`StepSequence.advantage`, from `GroupAdvantages`)
/// and π_behaviour the sampler's log-probs stored with the rollout (`behaviourLogProbs`) on a
/// reused generation's later steps, π_θ itself, detached, on its first (c1 = 1, as TRL's).
/// Aggregation, every count global (the whole step batch, all ranks), so any split over ranks
/// and micro-batches gives the same loss and gradient:
///   grpo     (1/B)·Σ_i (1/|o_i|)·Σ_t ℓ_t          (sequence mean of token means)
///   bnpo     Σ ℓ / N_tokens                        (TRL normalises per local micro-batch; with a
///                                                  global count it is the step's token mean)
///   dr_grpo  Σ ℓ / (B · max_completion_length)
///   dapo     Σ ℓ / N_tokens                        (also cispo's; the step's loss tokens: TRL's num_items_in_batch
///                                                  when a generation is one step; when it spans
///                                                  k steps, its loss tokens / k for each, as TRL)
/// B = rollouts in the step batch, |o_i| = rollout i's loss tokens, N_tokens = loss tokens of the
/// step. Detached: A, π_behaviour, π_ref (and cispo's clipped weight). The logits it reads are divided by the rollout
/// temperature (`Trainer.logitTemperature`, as TRL's GRPOTrainer takes every log-prob, the
/// reference's and the entropy), and the sampler's log-probs are at the same. The log-ratio
/// clamp (verl, Trinity-RFT) only keeps exp finite.
/// Arguments (TRL's names): `epsilon` ε_low (0.2), `epsilon_high` ε_high (default = epsilon),
/// `beta` (0: no reference model), `loss_type` (dapo, TRL's default), `use_bias_correction_kl`
/// (true), `delta` (none: INTELLECT-2's two-sided clip, `PPOClippedToken.loss`),
/// `importance_sampling_level` (token; sequence: GSPO's one ratio per rollout,
/// `GRPOObjective+SequenceLevel.swift`), `top_entropy_quantile` (1: every token; below, the PPO
/// term of the step's highest-entropy tokens only, `TopEntropyQuantile.swift`).
/// More loss types, TRL's: `sapo` (`GRPOObjective+SAPO.swift`), `luspo` (GSPO's sequence term
/// summed over the rollout's tokens, ÷ B), `vespo` (`GRPOObjective+VESPO.swift`).
/// Diagnostics (TRL's names): `clip_ratio/low_mean` (tokens with c1 < 1 − ε_low and A < 0),
/// `clip_ratio/high_mean` (c1 > 1 + ε_high and A > 0), `clip_ratio/region_mean` (either),
/// `ratio` (mean c1), `kl` (mean c1·k3, or k3 without the correction, when β > 0; as TRL logs
/// it), entropy, mean_p; under cispo `cispo_clip_ratio` (c1 > ε_max with A > 0) in place of
/// `clip_ratio/*`.
public final class GRPOObjective: Objective, DetachedEvaluable, RolloutPolicyObjective {
    public let trainerName = "GRPOTrainer"
    public enum LossType: String, CaseIterable { case grpo, bnpo, drGRPO = "dr_grpo", dapo, cispo, sapo, luspo, vespo }
    public enum ImportanceSamplingLevel: String, CaseIterable { case token, sequence }
    public let name = "grpo"
    public let requirements: ObjectiveRequirements
    public let epsilonLow: Float, epsilonHigh: Float, beta: Float
    public let lossType: LossType
    /// The KL term weighted by the importance ratio (TRL's `use_bias_correction_kl`).
    public let biasCorrectionKL: Bool
    /// For dr_grpo's normaliser; set from `max_completion_length` when the run is wired.
    public var maxCompletionLength = 0
    /// TRL's `delta`: the unclipped term's ratio capped at δ (infinity: none).
    public let delta: Float
    /// TRL's `importance_sampling_level`: a ratio per token, or one per rollout (GSPO).
    public let level: ImportanceSamplingLevel
    /// TRL's `top_entropy_quantile` ρ: the PPO term of the top-ρ tokens by entropy (1: all).
    public let topEntropyQuantile: Float
    /// The step's kept tokens under ρ < 1 (`TopEntropyQuantile.swift`).
    let highEntropy: TopEntropyQuantile
    /// SAPO's gate temperatures (`GRPOObjective+SAPO.swift`), for A > 0 and otherwise.
    public let sapoTemperaturePos: Float, sapoTemperatureNeg: Float
    /// VESPO's Gamma weight's (k, λ) for A ≥ 0 and A < 0 (`GRPOObjective+VESPO.swift`).
    public let vespoKPos: Float, vespoLambdaPos: Float, vespoKNeg: Float, vespoLambdaNeg: Float
    /// TRL's `off_policy_mask_threshold` δ (`GRPOObjective+OffPolicyMask.swift`); nil: none.
    public let offPolicyMaskThreshold: Float?
    /// TRL's `entropy_coef` (`GRPOObjective+EntropyBonus.swift`): the initial one when adaptive.
    public let entropyCoef: Double
    /// TRL's `use_adaptive_entropy` controller; nil without it.
    public let adaptiveEntropy: AdaptiveEntropyCoefficient?
    public var statefulParts: [StatefulComponent] { adaptiveEntropy.map { [$0] } ?? [] }

    public init(epsilon: Float = 0.2, epsilonHigh: Float? = nil, beta: Float = 0, lossType named: String = "dapo",
                biasCorrectionKL: Bool = true, delta: Float? = nil, importanceSamplingLevel: String = "token",
                topEntropyQuantile: Float = 1, offPolicyMaskThreshold: Float? = nil, entropyCoef: Double = 0,
                adaptiveEntropy: (min: Double, max: Double, delta: Double, target: Double)? = nil,
                sapoTemperatures: (pos: Float, neg: Float) = (1, 1.05),
                vespo: (kPos: Float, lambdaPos: Float, kNeg: Float, lambdaNeg: Float) = (2, 3, 3, 2)) throws {
        try checkArg(epsilon >= 0 && epsilon < 1, "grpo", "epsilon must be in [0, 1), got \(epsilon)")
        try checkArg((epsilonHigh ?? epsilon) >= 0, "grpo", "epsilon_high must be >= 0, got \(epsilonHigh ?? epsilon)")
        try checkArg(beta >= 0, "grpo", "beta must be >= 0, got \(beta)")
        try checkArg((0...1).contains(topEntropyQuantile), "grpo", "top_entropy_quantile must be in [0, 1], got \(topEntropyQuantile)")
        // TRL takes any δ; at or below 1 it would stop the gradient of every on-policy token (ratio 1) with A > 0.
        try checkArg(delta.map { $0 > 1 } ?? true, "grpo", "delta must be > 1: at or below 1 it caps the ratio of on-policy tokens (1) and stops their gradient (INTELLECT-2 recommends more than 1 + epsilon_high), got \(delta ?? 0)")
        guard let t = LossType(rawValue: named) else {
            throw ObjectiveError("objective grpo: loss_type must be one of \(LossType.allCases.map(\.rawValue).joined(separator: ", ")) (got \(RecipeError.quote(named)))")
        }
        guard let l = ImportanceSamplingLevel(rawValue: importanceSamplingLevel) else {
            throw ObjectiveError("objective grpo: importance_sampling_level must be token or sequence (got \(RecipeError.quote(importanceSamplingLevel)))")
        }
        // CISPO's weight is per token (MiniMax-M1 §3.1); TRL only warns on the pair.
        try checkArg(t != .cispo || l == .token, "grpo", "loss_type cispo weighs each token by its own clipped ratio: use importance_sampling_level token")
        // LUSPO is GSPO's sequence-level term summed over each rollout's tokens (TRL only warns).
        try checkArg(t != .luspo || l == .sequence, "grpo", "loss_type luspo scales GSPO's per-rollout term by the rollout's length: use importance_sampling_level sequence")
        // VESPO's weight is per sequence already, from the tokens' summed log-ratios (TRL only warns).
        try checkArg(t != .vespo || l == .token, "grpo", "loss_type vespo weighs each rollout by its own sequence ratio: use importance_sampling_level token")
        try checkArg(sapoTemperatures.pos > 0 && sapoTemperatures.neg > 0, "grpo", "sapo_temperature_pos and sapo_temperature_neg must be > 0 (the gate divides by them)")
        self.epsilonLow = epsilon; self.epsilonHigh = epsilonHigh ?? epsilon; self.beta = beta; lossType = t
        self.biasCorrectionKL = biasCorrectionKL
        if let a = adaptiveEntropy {
            try checkArg(a.min <= a.max, "grpo", "entropy_coef_min (\(a.min)) must be at most entropy_coef_max (\(a.max))")
            try checkArg(a.delta >= 0 && a.target >= 0, "grpo", "entropy_coef_delta and entropy_target must be >= 0")
        }
        self.delta = delta ?? .infinity; level = l; self.topEntropyQuantile = topEntropyQuantile
        highEntropy = TopEntropyQuantile(topEntropyQuantile)
        self.offPolicyMaskThreshold = offPolicyMaskThreshold; self.entropyCoef = entropyCoef
        sapoTemperaturePos = sapoTemperatures.pos; sapoTemperatureNeg = sapoTemperatures.neg
        vespoKPos = vespo.kPos; vespoLambdaPos = vespo.lambdaPos; vespoKNeg = vespo.kNeg; vespoLambdaNeg = vespo.lambdaNeg
        self.adaptiveEntropy = adaptiveEntropy.map { AdaptiveEntropyCoefficient(initial: entropyCoef, min: $0.min, max: $0.max, delta: $0.delta, target: $0.target) }
        var r = ObjectiveRequirements(referenceModel: beta > 0, statisticsPass: topEntropyQuantile < 1, behaviourLogProbs: true)
        r.statisticsFromPolicyAlone = true
        r.rollouts = true
        requirements = r
    }

    /// The aggregation weight of one loss token of a sequence with `tokens` loss tokens.
    func tokenWeight(tokens: Float, rollouts: Int, globalTokens: Int, tokensPerStep: Double? = nil) -> Float {
        switch lossType {
        case .grpo, .sapo: return tokens > 0 ? inverseCount(rollouts) / tokens : 0
        case .luspo: return inverseCount(rollouts)
        case .bnpo: return inverseCount(globalTokens)
        case .dapo, .cispo, .vespo: return tokensPerStep.map { inverseCount($0) } ?? inverseCount(globalTokens)
        case .drGRPO: return inverseCount(rollouts * max(maxCompletionLength, 1))
        }
    }

    /// The loss and gradient with cispo's detached weight read from `detached` (the trainer passes
    /// the logits themselves; the finite-difference checks hold it at the unperturbed ones). The
    /// ratios carry their gradient; π_old is read at `detached` where it is the live log-prob — a
    /// generation's first step (`behaviourLogProb`) — and for scored rows (the finite-difference
    /// checks supply those as behaviour log-probs instead).
    public func evaluate(_ input: ObjectiveInput, detached: UnsafePointer<Float>, dlogits: UnsafeMutablePointer<Float>?) -> ObjectiveResult {
        guard let dlogits else {   // the loss alone: a scratch gradient
            var scratch = [Float](repeating: 0, count: input.rows * input.vocab)
            return scratch.withUnsafeMutableBufferPointer { evaluate(input, detached: detached, dlogits: $0.baseAddress!) }
        }
        if level == .sequence { return sequenceLevelLossAndGradient(input, detached: detached, dlogits: dlogits) }
        let V = input.vocab
        let rollouts = input.sequences.count
        let ref = beta > 0 ? requireReference(input, name) : nil
        var diag = TokenDiagnostics()
        var total = 0.0, ratioSum = 0.0, klSum = 0.0, clip = ClipCounts()
        let keep = highEntropyRows(input)
        // One pass over the rollouts' log-ratios for the off-policy mask and VESPO's weight.
        let ratios = offPolicyMaskThreshold != nil || lossType == .vespo
            ? rolloutLogRatios(input, detached: detached, lossType == .vespo ? "loss_type vespo" : "off_policy_mask_threshold") : nil
        let offPolicy = offPolicyKept(ratios, input)
        let gamma = lossType == .vespo ? ratios.map { vespoWeights($0, input) } : nil
        let bonus = appliedEntropyCoef / entropyBonusTokens(input), measureKept = entropyBonusEnabled && keep != nil
        var keptEntropy = 0.0, keptTokens = 0.0
        for r in 0..<input.rows where input.mask[r] != 0 {
            let s = Int(input.sequenceId[r])
            precondition(s >= 0 && s < rollouts, "objective grpo needs the step batch's sequences (advantages) in its input")
            let y = lossTarget(input, r, name)
            let z = input.logits + r * V
            let lse = SoftmaxKernels.logSumExp(z, count: V)
            let logp = z[y] - lse
            let old = PPOClippedToken.behaviourLogProb(input, row: r, live: logp, detached: detached)
            let a = input.sequences[s].advantage
            let ppo = lossType == .cispo
                ? Self.cispo(logp: logp, weightLogp: LogitRow.detachedLogProb(detached, input.logits, row: r, V, target: y, liveLogP: logp),
                             old: old, advantage: a, max: epsilonHigh)
                : gamma.map { Self.vespo(logp: logp, old: old, advantage: a, phi: $0.phi[s]) } ?? policyTerm(logp: logp, old: old, advantage: a)
            // Outside the top ρ by entropy, or in a rollout the off-policy mask drops, the PPO term
            // is 0 (TRL multiplies it by the masks before the KL joins).
            let dropped = keep?[r] == false || offPolicy?.kept[s] == false
            var loss = dropped ? 0 : ppo.loss, dLogp = dropped ? 0 : ppo.dLogp
            let c1 = ppo.ratio
            clip.add(ppo)
            if let ref {
                let k3 = PPOClippedToken.k3(reference: ref + r * V, vocab: V, target: y, logp: logp)
                if biasCorrectionKL {
                    // ∂(c1·k3)/∂log π_θ = c1·k3' + c1·k3 = c1·(1 − e^d + e^d − d − 1) = −c1·d.
                    loss += beta * c1 * k3.value
                    dLogp += beta * c1 * k3.dLogp + beta * c1 * k3.value
                    klSum += Double(c1 * k3.value)
                } else {
                    loss += beta * k3.value
                    dLogp += beta * k3.dLogp
                    klSum += Double(k3.value)
                }
            }
            let w = input.mask[r] * tokenWeight(tokens: input.sequenceLossTokens[r], rollouts: rollouts,
                                                globalTokens: input.context.globalLossTokens, tokensPerStep: input.context.lossTokensPerStep)
            total += Double(w * loss)
            ratioSum += Double(c1)
            // ∂ℓ/∂z_v = ∂ℓ/∂logp · ([v = y] − p_v).
            let g = w * dLogp
            diag.entropy += LogitRow.addScaledSoftmax(g != 0 ? dlogits + r * V : nil, z, lse: lse, V, scale: -g)
            if g != 0 { dlogits[r * V + y] += g }
            diag.sumP += Double(expf(logp)); diag.count += 1
            // The entropy bonus on the tokens it acts on (every loss token, or the top ρ).
            if keep?[r] != false && (bonus != 0 || measureKept) {
                let e = addEntropyBonus(input, row: r, lse: lse, coef: bonus, dlogits: dlogits)
                total += e.loss; keptEntropy += e.entropy; keptTokens += 1
            }
        }
        var d: [String: Double] = ["ratio": ratioSum]
        var c: [String: Double] = ["ratio": diag.count]
        if lossType == .cispo { d["cispo_clip_ratio"] = clip.high; c["cispo_clip_ratio"] = diag.count }   // TRL's one clip figure for cispo
        else if let gamma { d["vespo/phi_seq_mean"] = gamma.sum; c["vespo/phi_seq_mean"] = gamma.count }   // vespo's one figure
        else if lossType != .sapo { clip.into(&d, &c, tokens: diag.count) }   // none for sapo, as TRL
        if beta > 0 { d["kl"] = klSum; c["kl"] = diag.count }
        diag.into(&d, &c)
        offPolicy.into(&d, &c)
        if measureKept { d[Self.keptEntropyKey] = keptEntropy; c[Self.keptEntropyKey] = keptTokens }
        return ObjectiveResult(loss: total, diagnostics: d, diagnosticCounts: c)
    }

    /// CISPO's token term (Chen et al., "MiniMax-M1", arXiv 2506.13585, §3.1; TRL's
    /// `loss_type="cispo"`): ℓ_t = −sg(min(c1, ε_max))·A·log π_θ(y_t), the importance weight clipped
    /// and detached instead of the update, so every token keeps a gradient; ε_max is `epsilon_high`
    /// (ScaleRL recommends 5). Its clip flag (TRL's `cispo_clip_ratio`): c1 > ε_max with A > 0.
    /// `weightLogp` is the log-prob the detached weight is taken at (`logp` in training); the
    /// ratio returned, which the KL term and the figures read, is the live one, as TRL's coef_1.
    static func cispo(logp: Float, weightLogp: Float, old: Float, advantage a: Float, max epsilonMax: Float)
        -> (loss: Float, dLogp: Float, ratio: Float, clippedLow: Bool, clippedHigh: Bool) {
        let c1 = expf(min(max(logp - old, -20), 20)), weight = min(expf(min(max(weightLogp - old, -20), 20)), epsilonMax)
        return (-weight * a * logp, -weight * a, c1, false, c1 > epsilonMax && a > 0)
    }
}
