import Foundation
import TensorCore

/// UFT, "Unifying Supervised and Reinforcement Fine-Tuning", Liu et al., arXiv 2505.16984,
/// §3 (hints with a cosine-decaying length, the log-likelihood term on the hint); code:
/// `liumy2010/UFT` (`rl_dataset.py` hint sampling, `dp_actor.py::update_policy` loss).
///
/// Each sampled prompt gets a hint: the first L tokens of its demonstration's answer (the
/// demonstration split into `segments` = min(5, |answer|) pieces at sep[j] = round(j/num·|answer|),
/// Python's round-half-even), L = sep[Binomial(num, p(t))] with
///   p(t) = lower + ½(upper − lower)(1 + cos(π·t/T_hint)) for t ≤ T_hint, no hint after,
/// t the optimizer step at which the generation is sampled; all G rollouts of the prompt continue
/// prompt + hint (one group; prompts with a hint and without one meet in a step). Per step:
///
///   L = Σ_{generated} [−min(c·A, clip(c, 1 − ε_low, 1 + ε_high)·A) + β·k3 − c_H·H_t] / N_gen
///     + β_sft · Σ_{hint} −log p(y_t) / N_hint,
///   c = exp(log π_θ − log π_old),  k3 = e^{d} − d − 1, d = log π_ref − log π_θ,
///
/// A the rollout's group advantage (`--scale-rewards`, GRPO's z-score by default), H_t the
/// policy's entropy at the token, N_gen / N_hint the generated and hint loss tokens of the whole
/// step batch (so the result does not depend on the rank count; the code's token means are per
/// micro-batch). The hint tokens get the log-likelihood term only (they are prompt in the
/// policy-gradient term). π_old: the sampler's log-probs on a reused generation's later steps,
/// π_θ itself on its first (c = 1; `PPOClippedToken.behaviourLogProb`). Detached: A, π_old, π_ref. The code clamps the hint logits to
/// ±100 before the cross-entropy; that is not applied. The pieces are token spans: UFT's
/// `rl_dataset.py` cuts its hints at the solution's steps (a hint never ends mid-step), which
/// the built-in tasks' one-line answers do not have; a hint here may end inside a word.
/// Arguments (the code's defaults): `sft_coef` β_sft 0.001, `beta` 0.001 (k3 KL to the
/// reference, `kl_loss_coef`), `entropy_coef` 0.001, `epsilon` 0.2, `epsilon_high` (= epsilon),
/// `hint_steps` T_hint 300, `upper` 0.95, `lower` 0.05, `segments` 5.
/// Diagnostics: `sft_loss`, `grpo_loss`, `clip_ratio/low_mean`, `clip_ratio/high_mean`,
/// `clip_ratio/region_mean` (as grpo), `ratio`, `kl` (β > 0), entropy, mean_p.
public final class UFTObjective: Objective, DetachedEvaluable, RevealedPrefixObjective {
    public let prefixTermIgnoresAdvantage = true
    public let name = "uft"
    public let requirements: ObjectiveRequirements
    public let sftCoef: Float, beta: Float, entropyCoef: Float, epsilonLow: Float, epsilonHigh: Float
    public let hintSteps: Int, upper: Double, lower: Double, segments: Int

    public init(sftCoef: Float = 0.001, beta: Float = 0.001, entropyCoef: Float = 0.001, epsilon: Float = 0.2,
                epsilonHigh: Float? = nil, hintSteps: Int = 300, upper: Double = 0.95, lower: Double = 0.05, segments: Int = 5) throws {
        try checkArg(sftCoef >= 0 && beta >= 0 && entropyCoef >= 0, "uft", "sft_coef, beta and entropy_coef must be >= 0")
        try checkArg(epsilon >= 0 && epsilon < 1, "uft", "epsilon must be in [0, 1), got \(epsilon)")
        try checkArg((epsilonHigh ?? epsilon) >= 0, "uft", "epsilon_high must be >= 0")
        try checkArg((0...1).contains(lower) && (0...1).contains(upper), "uft", "lower and upper must be probabilities in [0, 1]")
        try checkArg(hintSteps >= 1 && segments >= 1, "uft", "hint_steps and segments must be >= 1")
        self.sftCoef = sftCoef; self.beta = beta; self.entropyCoef = entropyCoef
        self.epsilonLow = epsilon; self.epsilonHigh = epsilonHigh ?? epsilon
        self.hintSteps = hintSteps; self.upper = upper; self.lower = lower; self.segments = segments
        var r = ObjectiveRequirements(referenceModel: beta > 0, behaviourLogProbs: true)
        r.rollouts = true
        requirements = r
    }

    // MARK: the hint schedule (the producer's side)

    /// p(t), the probability that each hint segment is revealed; 0 after `hint_steps`.
    public func hintProbability(step t: Int) -> Double {
        guard t <= hintSteps else { return 0 }
        return lower + 0.5 * (upper - lower) * (1 + cos(Double.pi * Double(t) / Double(hintSteps)))
    }

    public func scheduleValue(step: Int) -> Double { hintProbability(step: step) }
    public func configure(settings: RolloutSettings, totalSteps: Int) throws {}

    /// One hint length per prompt, the same for its G rollouts: sep[Binomial(num, p(t))].
    public func revealed(answerTokens n: Int, rollouts: Int, step: Int, random: inout SplitMix64) -> [Int] {
        let num = min(segments, n)
        guard num > 0 else { return [Int](repeating: 0, count: rollouts) }
        let p = hintProbability(step: step)
        var shown = 0
        for _ in 0..<num where Double(random.next() >> 11) * 0x1p-53 < p { shown += 1 }
        return [Int](repeating: Self.hintLength(shown: shown, segments: num, answerTokens: n), count: rollouts)
    }

    /// sep[shown]: round(shown/num·n) (half to even, as Python's round), the whole answer at num.
    static func hintLength(shown: Int, segments num: Int, answerTokens n: Int) -> Int {
        shown == num ? n : Int((Double(shown) / Double(num) * Double(n)).rounded(.toNearestOrEven))
    }

    // MARK: the loss

    /// π_old on a generation's first step is read at `detached` (the logits themselves in
    /// training; the unperturbed ones in the finite-difference checks).
    public func evaluate(_ input: ObjectiveInput, detached: UnsafePointer<Float>, dlogits: UnsafeMutablePointer<Float>?) -> ObjectiveResult {
        guard let dlogits else {   // the loss alone: a scratch gradient
            var scratch = [Float](repeating: 0, count: input.rows * input.vocab)
            return scratch.withUnsafeMutableBufferPointer { evaluate(input, detached: detached, dlogits: $0.baseAddress!) }
        }
        let V = input.vocab
        let hint = RevealedTokens.rows(input, objective: name)
        let counts = RevealedTokens.counts(input.sequences)
        let genScale = inverseCount(counts.generated), hintScale = sftCoef * inverseCount(counts.revealed)
        let ref = beta > 0 ? requireReference(input, name) : nil
        let lo = 1 - epsilonLow, hi = 1 + epsilonHigh
        var diag = TokenDiagnostics()
        var grpo = 0.0, sft = 0.0, ratioSum = 0.0, klSum = 0.0, genCount = 0.0, clip = ClipCounts()
        for r in 0..<input.rows where input.mask[r] != 0 {
            let y = lossTarget(input, r, name)
            let z = input.logits + r * V
            let lse = SoftmaxKernels.logSumExp(z, count: V)
            let logp = z[y] - lse, m = input.mask[r]
            let row = dlogits + r * V
            let g: Float   // ∂L/∂logp of this token, already scaled
            if hint[r] {
                sft += Double(-logp)
                g = -hintScale * m
                diag.entropy += LogitRow.addScaledSoftmax(g != 0 ? row : nil, z, lse: lse, V, scale: -g)
            } else {
                let old = PPOClippedToken.behaviourLogProb(input, row: r, live: logp, detached: detached)
                let ppo = PPOClippedToken.loss(logp: logp, old: old, advantage: input.sequences[Int(input.sequenceId[r])].advantage,
                                               low: lo, high: hi)
                var loss = ppo.loss, dLogp = ppo.dLogp
                clip.add(ppo)
                if let ref {
                    let k3 = PPOClippedToken.k3(reference: ref + r * V, vocab: V, target: y, logp: logp)
                    loss += beta * k3.value; dLogp += beta * k3.dLogp
                    klSum += Double(k3.value)
                }
                let h = RevealedTokens.addEntropyBonus(row, z, lse: lse, V, scale: entropyCoef * genScale * m)
                grpo += Double(m * (loss - entropyCoef * Float(h)))
                ratioSum += Double(ppo.ratio); genCount += 1
                g = genScale * dLogp * m
                diag.entropy += h
                // ∂ℓ/∂z_v = ∂ℓ/∂logp · ([v = y] − p_v).
                _ = LogitRow.addScaledSoftmax(g != 0 ? row : nil, z, lse: lse, V, scale: -g)
            }
            if g != 0 { row[y] += g }
            diag.sumP += Double(expf(logp)); diag.count += 1
        }
        var d: [String: Double] = ["ratio": ratioSum,
                                   "sft_loss": sft * Double(inverseCount(counts.revealed)), "grpo_loss": grpo * Double(genScale)]
        var c: [String: Double] = ["ratio": genCount]
        clip.into(&d, &c, tokens: genCount)
        if beta > 0 { d["kl"] = klSum; c["kl"] = genCount }
        diag.into(&d, &c)
        return ObjectiveResult(loss: Double(genScale) * grpo + Double(hintScale) * sft, diagnostics: d, diagnosticCounts: c)
    }
}
