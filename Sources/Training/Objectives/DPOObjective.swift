import Foundation
import TensorCore

/// Direct Preference Optimization, Rafailov et al., arXiv:2305.18290, §4 (Eq. 7), with the
/// sigmoid loss and reward diagnostics of TRL's `DPOTrainer`:
///
///   r(y) = β·(log π_θ(y|x) − log π_ref(y|x)),   log π(y|x) = Σ_t M_t log p(y_t | y_<t, x),
///   L    = (1/P) Σ_pairs −log σ(r(y_w) − r(y_l)),
///   ∂L/∂z_t = (1/P)·(σ(h) − 1)·(±β)·(onehot(y_t) − softmax(z_t))  on loss tokens,
///
/// with h = r(y_w) − r(y_l), + for the chosen y_w and − for the rejected y_l. P is the number
/// of pairs in the whole step batch (`ObjectiveInput.sequences`, identical on every rank), so
/// the loss does not depend on the rank count. The reference π_ref is frozen: the initial
/// weights or `--ref-model` (`input.referenceLogits`), or its log-probs of the answers scored
/// before the first step (`--precompute-ref-log-probs`, `input.referenceLogProbs`, as TRL's
/// `precompute_ref_log_probs`). A pair's two sequences always share a micro-batch (`StepBatch.units`), so both sums are complete here; under packing each sum
/// runs over its own segment only. Arguments: `beta` β (default 0.1, TRL's; must be > 0) and
/// TRL's `loss_type` (default sigmoid, the loss above; the others in DPOLoss.swift, with
/// `label_smoothing` for robust and exo_pair, `discopop_tau` for discopop) — several types are
/// summed, each times its `loss_weights` entry (default 1), as TRL's: L = Σ_k w_k·L_k — and
/// `f_divergence_type` (default reverse_kl; DPODivergence.swift, `f_alpha_divergence_coef`).
/// The `sft` type is a mean over the whole step batch's chosen loss tokens (their count from
/// `input.sequences`), so its share does not depend on the rank count either; TRL takes the
/// mean over each device's micro-batch.
/// Diagnostics, as TRL's `DPOTrainer` (1.16) logs them — means over pairs: `rewards/chosen`,
/// `rewards/rejected`, `rewards/margins` (chosen − rejected), `rewards/accuracies` (share of
/// pairs with chosen > rejected), `logps/chosen`, `logps/rejected` (log π_θ(y|x)); means over
/// loss tokens: `logits/chosen`, `logits/rejected` (each token's mean logit over the
/// vocabulary), `mean_token_accuracy` (chosen answers' tokens whose largest logit is the
/// target) and `entropy` (−Σ p log p, every answer's tokens).
public final class DPOObjective: DetachedEvaluable {
    public let name = "dpo"
    public let requirements: ObjectiveRequirements = {
        var r = ObjectiveRequirements(referenceModel: true, pairs: true)
        r.precomputableReference = true   // it reads Σ_t log π_ref(y_t) only
        return r
    }()
    public let beta: Float
    /// The loss types summed and their weights (TRL's `loss_type` list and `loss_weights`).
    public let lossTypes: [DPOLoss], lossWeights: [Double]
    let settings: DPOLoss.Settings
    let divergence: DPODivergence, alphaCoef: Double
    /// LD-DPO (Liu et al., arXiv 2409.06411; TRL's `ld_alpha`): the answers' tokens past the
    /// shorter answer's length count α times in both log-prob sums (nil: every token once).
    let ldAlpha: Double?
    /// WPO (Zhou et al., arXiv 2406.11827, Eq. 2; TRL's `use_weighting`): each pair's loss
    /// weighted by its answers' exp(mean_t (log p_t − log Σ_v p_v²)), detached.
    let useWeighting: Bool
    /// ipo and sigmoid_norm divide each log-ratio by its answer's tokens (TRL's DPOTrainer); off
    /// for online-dpo, whose ipo reads the sums (TRL's OnlineDPOTrainer).
    var lengthNormalised = true
    /// Online DPO's figures of the sequences themselves (OnlineDPOObjective): `objective/kl`,
    /// `objective/entropy`, `objective/non_score_reward`, `objective/rlhf_reward` and `beta`.
    var onlineFigures = false

    public init(beta: Float = 0.1, lossTypes: [DPOLoss] = [.sigmoid], lossWeights: [Double]? = nil, labelSmoothing: Float = 0,
                discopopTau: Float = 0.05, divergence: DPODivergence = .reverseKL, alphaCoef: Float = 0.5, ldAlpha: Float? = nil,
                useWeighting: Bool = false) throws {
        try checkArg(beta > 0, "dpo", "beta must be > 0, got \(beta)")
        try checkArg(!lossTypes.isEmpty, "dpo", "loss_type names no loss type")
        if let twice = lossTypes.first(where: { t in lossTypes.filter { $0 == t }.count > 1 }) {
            try checkArg(false, "dpo", "loss_type lists \(twice.rawValue) twice; give each type once, its weight in loss_weights")
        }
        let weights = lossWeights ?? lossTypes.map { _ in 1 }
        try checkArg(weights.count == lossTypes.count, "dpo", "loss_weights has \(weights.count) weight(s) for \(lossTypes.count) loss type(s) (\(lossTypes.map(\.rawValue).joined(separator: ",")))")
        if let w = weights.first(where: { !($0 >= 0) || !$0.isFinite }) {
            try checkArg(false, "dpo", "loss_weights must be finite and ≥ 0, got \(w)")
        }
        if lossTypes.contains(.robust) {
            try checkArg(labelSmoothing >= 0 && labelSmoothing < 0.5, "dpo", "label_smoothing must be in [0, 0.5) for loss_type robust, got \(labelSmoothing)")
        }
        if lossTypes.contains(.exoPair) {
            try checkArg(labelSmoothing > 0 && labelSmoothing < 1, "dpo", "label_smoothing must be in (0, 1) for loss_type exo_pair (its target distribution is (1 − ε, ε)), got \(labelSmoothing)")
        }
        try checkArg(discopopTau > 0, "dpo", "discopop_tau must be > 0, got \(discopopTau)")
        if divergence != .reverseKL, let other = lossTypes.first(where: { !DPODivergence.lossTypes.contains($0) }) {
            try checkArg(false, "dpo", "f_divergence_type \(divergence.rawValue) changes the loss types built on the chosen − rejected difference (\(DPOLoss.allCases.filter(DPODivergence.lossTypes.contains).map(\.rawValue).joined(separator: ", "))), not \(other.rawValue), as TRL")
        }
        // TRL multiplies its batch's sft mean by the batch's mean pair weight: here that would need
        // every rank's weights before the backward pass.
        try checkArg(!(useWeighting && lossTypes.contains(.sft)), "dpo", "use_weighting weighs each pair's loss; the sft type is a mean over the batch's tokens, which it does not weigh here")
        if let a = ldAlpha { try checkArg(a >= 0 && a <= 1, "dpo", "ld_alpha must be in [0, 1], got \(a)") }
        self.ldAlpha = ldAlpha.map(Double.init); self.useWeighting = useWeighting
        self.divergence = divergence; self.alphaCoef = Double(alphaCoef)
        self.beta = beta; self.lossTypes = lossTypes; self.lossWeights = weights
        settings = DPOLoss.Settings(beta: Double(beta), labelSmoothing: Double(labelSmoothing), tau: Double(discopopTau))
    }

    /// WPO's weights are detached: computed from `detached` (the logits themselves in training;
    /// the unperturbed ones in a finite-difference check).
    public func evaluate(_ input: ObjectiveInput, detached: UnsafePointer<Float>, dlogits: UnsafeMutablePointer<Float>?) -> ObjectiveResult {
        let ref = ReferenceTargets(input, name)
        let V = input.vocab, beta = Double(self.beta)
        // Sequence log-prob sums of the policy and the reference, keyed by step-batch index.
        var policy: [Int: Double] = [:], reference: [Int: Double] = [:], lossTokens: [Int: Double] = [:]
        var lse = [Float](repeating: 0, count: input.rows)
        // Per loss row: the policy's and the reference's log-prob of the target, and the row's
        // place among its answer's loss tokens (1-based; ld_alpha's weights need the pair's counts).
        var rowLogp = [Double](repeating: 0, count: input.rows), rowRef = rowLogp
        var position = [Double](repeating: 0, count: input.rows)
        var tokens = TokenFigures()
        for r in 0..<input.rows where input.sequenceId[r] >= 0 {
            let s = Int(input.sequenceId[r])
            precondition(s < input.sequences.count, "objective dpo needs the step batch's sequences (pair links) in its input")
            if policy[s] == nil { policy[s] = 0; reference[s] = 0 }   // present, even without loss tokens
            guard input.mask[r] != 0 else { continue }
            let y = lossTarget(input, r, name)
            lossTokens[s, default: 0] += 1
            position[r] = lossTokens[s]!
            let z = input.logits + r * V
            lse[r] = SoftmaxKernels.logSumExp(z, count: V)
            rowLogp[r] = Double(z[y] - lse[r])
            rowRef[r] = Double(ref.logProb(row: r, target: y))
            tokens.add(z, lse: lse[r], target: y, vocab: V, role: input.sequences[s].pairRole == .chosen ? .chosen : .rejected)
        }
        // log π(y|x) = Σ_t w_t·log p_t, w_t = 1, or under ld_alpha α past the pair's shared length.
        var weight = [Double](repeating: 1, count: input.rows)
        for r in 0..<input.rows where input.mask[r] != 0 && input.sequenceId[r] >= 0 {
            let s = Int(input.sequenceId[r])
            if let alpha = ldAlpha {
                let shared = min(lossTokens[s]!, lossTokens[input.sequences[s].pair] ?? 0)   // TRL's min(n, 0) for an empty answer
                if position[r] > shared { weight[r] = alpha }
            }
            policy[s]! += weight[r] * rowLogp[r]
            reference[s]! += weight[r] * rowRef[r]
        }
        let wpo = useWeighting ? wpoWeights(input, detached: detached, lossTokens: lossTokens) : [:]
        let scale = Double(inverseCount(input.globalPairs))
        var coefficient: [Int: Float] = [:]
        var loss = 0.0, chosenSum = 0.0, rejectedSum = 0.0, correct = 0.0, local = 0.0, logpsChosen = 0.0, logpsRejected = 0.0
        // Each answer's loss tokens, from the rows (a pair is never split across micro-batches).
        var lossTargets: [Int: [Int32]] = [:]
        for r in 0..<input.rows where input.mask[r] != 0 && input.sequenceId[r] >= 0 {
            lossTargets[Int(input.sequenceId[r]), default: []].append(input.targets[r])
        }
        for (s, logp) in policy.sorted(by: { $0.key < $1.key }) where input.sequences[s].pairRole == .chosen {
            let l = input.sequences[s].pair
            guard var rejectedLogp = policy[l] else {
                preconditionFailure("objective dpo: pair (\(s), \(l)) split across micro-batches")
            }
            // Two answers of the same tokens (online-dpo samples them often from a peaked
            // policy) are one answer: torch computes identical rows identically, and TRL logs a
            // margin of 0 and no accuracy; here their positions in the batch changed the last
            // bits, and rewards/accuracies counted the rounding (0.5 where TRL gives 0).
            let same = lossTargets[s] != nil && lossTargets[s] == lossTargets[l]
            if same { rejectedLogp = logp }
            let c = logp - reference[s]!, rr = same ? c : rejectedLogp - reference[l]!
            let rw = beta * c, rl = beta * rr
            // ℓ and its derivatives in the two log-ratios. ipo's and sigmoid_norm's n_w, n_l are TRL's
            // completion_mask sums: each answer's tokens, one more than its loss tokens where the
            // answer starts the sequence (an empty prompt, no BOS); ≥ 1 as TRL's clamp(min=1).
            // Under an f-divergence the loss reads g(c), g(r) (DPODivergence.swift); the rewards stay β·c, β·r.
            let gc = divergence.score(c, alpha: alphaCoef), gr = divergence.score(rr, alpha: alphaCoef)
            var pair = (loss: 0.0, dc: 0.0, dr: 0.0)
            for (type, k) in zip(lossTypes, lossWeights) where type != .sft {
                let t = type.loss(c: gc.value, r: gr.value, chosenTokens: answerTokens(input.sequences[s]),
                                  rejectedTokens: answerTokens(input.sequences[l]), settings)
                pair.loss += k * t.loss; pair.dc += k * t.dc; pair.dr += k * t.dr
            }
            // WPO (use_weighting): the pair's loss times its two answers' detached weights.
            let w = useWeighting ? wpo[s, default: 1] * wpo[l, default: 1] : 1
            loss += pair.loss * w
            coefficient[s] = Float(pair.dc * gc.slope * w * scale); coefficient[l] = Float(pair.dr * gr.slope * w * scale)
            chosenSum += rw; rejectedSum += rl; correct += rw > rl ? 1 : 0; local += 1
            logpsChosen += logp; logpsRejected += rejectedLogp
        }
        // sft: −(w/N_w) Σ log p over the chosen answers' loss tokens, N_w of them in the step batch
        // (lossMask[0] is never a target); each token's log-prob once, whatever ld_alpha says.
        let sftWeight = zip(lossTypes, lossWeights).first { $0.0 == .sft }?.1 ?? 0
        var sftCoefficient = 0.0, sftLoss = 0.0
        if lossTypes.contains(.sft) {
            sftCoefficient = -sftWeight * Double(inverseCount(PairLogProbs.lossTokens(input.sequences, of: .chosen)))
            for r in 0..<input.rows where input.mask[r] != 0 && input.sequenceId[r] >= 0
                && input.sequences[Int(input.sequenceId[r])].pairRole == .chosen {
                sftLoss += sftCoefficient * rowLogp[r]
            }
        }
        // ∂L/∂z = c·(onehot(y) − softmax(z)) on each loss row of a paired sequence.
        for r in 0..<input.rows where input.mask[r] != 0 && input.sequenceId[r] >= 0 {
            guard let dlogits, let c0 = coefficient[Int(input.sequenceId[r])] else { continue }
            var c = weight[r] == 1 ? c0 : Float(Double(c0) * weight[r])
            if input.sequences[Int(input.sequenceId[r])].pairRole == .chosen { c += Float(sftCoefficient) }
            let y = lossTarget(input, r, name)
            _ = LogitRow.addScaledSoftmax(dlogits + r * V, input.logits + r * V, lse: lse[r], V, scale: -c)
            dlogits[r * V + y] += c
        }
        var d = ["rewards/chosen": chosenSum, "rewards/rejected": rejectedSum, "rewards/accuracies": correct,
                 "rewards/margins": chosenSum - rejectedSum, "logps/chosen": logpsChosen, "logps/rejected": logpsRejected]
        var c = d.mapValues { _ in local }
        tokens.into(&d, &c)
        if onlineFigures { addOnlineFigures(input, policy: policy, reference: reference, &d, &c) }
        return ObjectiveResult(loss: loss * scale + sftLoss, diagnostics: d, diagnosticCounts: c)
    }

    /// TRL's OnlineDPOTrainer figures, sums over this micro-batch's answers (each counted once):
    /// kl = Σ_t log π_θ − log π_ref, −β·kl, the score (the rollout's `advantage`, RankedPairs)
    /// − β·kl, and −Σ_t log π_θ.
    func addOnlineFigures(_ input: ObjectiveInput, policy: [Int: Double], reference: [Int: Double],
                          _ d: inout [String: Double], _ c: inout [String: Double]) {
        let b = Double(beta), answers = policy.keys.filter { input.sequences[$0].pairRole != .none }
        let kl = answers.reduce(0.0) { $0 + policy[$1]! - reference[$1]! }
        d["objective/kl"] = kl; d["objective/non_score_reward"] = -b * kl
        d["objective/rlhf_reward"] = answers.reduce(0.0) { $0 + Double(input.sequences[$1].advantage) } - b * kl
        d["objective/entropy"] = -answers.reduce(0.0) { $0 + policy[$1]! }
        d["beta"] = b * Double(answers.count)
        for k in ["objective/kl", "objective/non_score_reward", "objective/rlhf_reward", "objective/entropy", "beta"] { c[k] = Double(answers.count) }
    }

    /// An answer's tokens as TRL's unshifted completion_mask counts them, at least 1; 1 when
    /// `lengthNormalised` is off (online-dpo's ipo reads the sums).
    func answerTokens(_ sequence: StepSequence) -> Double {
        guard lengthNormalised else { return 1 }
        return Double(max(sequence.lossMask.reduce(0) { $0 + Int($1) }, 1))
    }

    /// WPO's weight of each answer: exp of the mean over its loss tokens of log p_t − log Σ_v p_v²
    /// (the log-prob against the distribution's own typical probability), unweighted by ld_alpha,
    /// as TRL's.
    func wpoWeights(_ input: ObjectiveInput, detached: UnsafePointer<Float>, lossTokens: [Int: Double]) -> [Int: Double] {
        let V = input.vocab
        var sums: [Int: Double] = [:], doubled = [Float](repeating: 0, count: V)
        for r in 0..<input.rows where input.mask[r] != 0 && input.sequenceId[r] >= 0 {
            let z = detached + r * V, lse = SoftmaxKernels.logSumExp(z, count: V)
            for v in 0..<V { doubled[v] = 2 * z[v] }
            // log Σ p² = logsumexp(2z) − 2·lse
            let logSumSq = Double(SoftmaxKernels.logSumExp(doubled, count: V)) - 2 * Double(lse)
            sums[Int(input.sequenceId[r]), default: 0] += Double(z[lossTarget(input, r, name)] - lse) - logSumSq
        }
        return sums.reduce(into: [:]) { $0[$1.key] = exp($1.value / max(lossTokens[$1.key] ?? 0, 1)) }
    }

    /// The token means TRL's DPOTrainer logs beside its pair means: sums and counts here, the
    /// trainer divides the step's totals (every rank's), so the rank count does not change them.
    struct TokenFigures {
        var logitsW = 0.0, logitsL = 0.0, tokensW = 0.0, tokensL = 0.0, correctW = 0.0, entropy = 0.0, tokensGold = 0.0

        /// A loss token of a `role` answer; a gold answer's (TPO) counts in `entropy` only, as
        /// TRL's TPOTrainer takes the entropy over every completion token of the three.
        mutating func add(_ z: UnsafePointer<Float>, lse: Float, target y: Int, vocab V: Int, role: PairRole) {
            entropy += LogitRow.addScaledSoftmax(nil, z, lse: lse, V, scale: 0)
            if role == .gold { tokensGold += 1; return }
            let mean = Double(Vec.total(z, count: V)) / Double(V)
            if role == .chosen {
                logitsW += mean; tokensW += 1
                // First maximal logit, as argmax (as NLLObjective's mean_token_accuracy finds it).
                if Vec.firstIndex(of: Vec.maximum(z, count: V), in: z, count: V) == y { correctW += 1 }
            } else {
                logitsL += mean; tokensL += 1
            }
        }

        func into(_ d: inout [String: Double], _ c: inout [String: Double]) {
            d["logits/chosen"] = logitsW; c["logits/chosen"] = tokensW
            d["logits/rejected"] = logitsL; c["logits/rejected"] = tokensL
            d["mean_token_accuracy"] = correctW; c["mean_token_accuracy"] = tokensW
            d["entropy"] = entropy; c["entropy"] = tokensW + tokensL + tokensGold
        }
    }

}
