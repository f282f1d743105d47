import Foundation
import TensorCore

/// Kahneman-Tversky Optimization, Ethayarajh et al., arXiv:2402.01306, §4.1 (Eq. 7), as TRL
/// 1.16's `KTOTrainer` computes it, on unpaired rows each labelled desirable or undesirable
/// (UnpairedReader, UnpairedProducer):
///
///   r(y) = log π_θ(y|x) − log π_ref(y|x),   log π(y|x) = Σ_t M_t log p(y_t | y_<t, x),
///   z₀   = max(0, mean over the step's mismatched pairs (x_i, y_j) of r), detached,
///   ℓ    = λ_D·(1 − σ(β·(r − z₀)))  for a desirable y,   λ_U·(1 − σ(β·(z₀ − r)))  for an undesirable one,
///   L    = (1/N) Σ_rows ℓ,
///
/// N the labelled rows of the whole step batch (`ObjectiveInput.sequences`), so the loss does
/// not depend on the rank count. z₀ (the KL term, TRL's `kl`) comes from the statistics pass
/// over the step's `.mismatched` sequences — prompt i with answer j = i − 1, rotated within the
/// whole step batch, or the nearest earlier row with another prompt (UnpairedProducer); under
/// `kl_pairing=fixed` each row's pair of the whole training set in file order, as TRL's — which
/// read the policy and the reference (or its precomputed log-probs) without gradients (none: z₀ = 0); TRL
/// estimates it per device micro-batch and averages over devices, the same value when each
/// device holds one micro-batch of equal size. `loss_type` apo_zero_unpaired (APO, arXiv
/// 2408.06266, Eq. 7, unpaired as TRL's): 1 − σ(β·r) for a desirable answer, σ(β·r) for an
/// undesirable one, with no KL term and so no mismatched pairs. Arguments, TRL's names and
/// defaults: `beta` 0.1, `loss_type` kto, `desirable_weight` λ_D 1, `undesirable_weight` λ_U 1;
/// `kl_pairing` (sft-dist's) step.
/// Diagnostics as TRL logs them: `kl` (z₀); means over the desirable (chosen) or undesirable
/// (rejected) rows of `rewards/*` (β·r) and `logps/*` (log π_θ(y|x)); `rewards/margins` (the
/// chosen mean − the rejected mean); means over answer tokens of `logits/*` (each token's mean
/// logit) and `entropy`.
public final class KTOObjective: Objective {
    public enum LossType: String, CaseIterable, Sendable {
        case kto
        case apoZeroUnpaired = "apo_zero_unpaired"
    }
    /// Where the KL term's mismatched pairs come from (UnpairedProducer): `step` rotates the
    /// answers within each step batch; `fixed` pairs each row once, in file order, before the
    /// first step, as TRL's KTOTrainer does when it reads the data — the pairs
    /// `--precompute-ref-log-probs` can score in advance.
    public enum KLPairing: String, CaseIterable, Sendable {
        case step, fixed
    }

    public let name = "kto"
    public let requirements: ObjectiveRequirements
    public let beta: Double, lossType: LossType, desirableWeight: Double, undesirableWeight: Double
    public let klPairing: KLPairing
    /// z₀ of the current step (beginStep), 0 under apo_zero_unpaired.
    private(set) var kl = 0.0

    public init(beta: Float = 0.1, lossType: LossType = .kto, desirableWeight: Float = 1, undesirableWeight: Float = 1,
                klPairing: KLPairing = .step) throws {
        try checkArg(beta > 0 && beta.isFinite, "kto", "beta must be > 0, got \(beta)")
        try checkArg(desirableWeight >= 0 && desirableWeight.isFinite, "kto", "desirable_weight must be finite and ≥ 0, got \(desirableWeight)")
        try checkArg(undesirableWeight >= 0 && undesirableWeight.isFinite, "kto", "undesirable_weight must be finite and ≥ 0, got \(undesirableWeight)")
        self.beta = Double(beta); self.lossType = lossType
        self.desirableWeight = Double(desirableWeight); self.undesirableWeight = Double(undesirableWeight)
        try checkArg(klPairing == .step || lossType == .kto, "kto", "kl_pairing chooses the mismatched pairs of the KL term, which loss_type=\(lossType.rawValue) does not have")
        self.klPairing = klPairing
        var r = ObjectiveRequirements(referenceModel: true, statisticsPass: lossType == .kto)
        r.unpaired = true
        // apo_zero_unpaired reads Σ_t log π_ref(y_t) of the labelled rows only; kto's KL term also
        // reads it on the mismatched pairs, known before the first step under kl_pairing=fixed only.
        r.precomputableReference = lossType == .apoZeroUnpaired || klPairing == .fixed
        requirements = r
    }

    /// Whether the step batch carries mismatched pairs for the KL term.
    public var estimatesKL: Bool { lossType == .kto }

    /// Per micro-batch of mismatched sequences: [Σ over them of r(y), their count].
    public func statistics(_ input: ObjectiveInput) -> [Float] {
        let sums = SequenceLogRatios(input, name, where: { $0.origin == .mismatched })
        // In step-batch order, so a resumed run sums the same way (a Dictionary's order is per process).
        return [Float(sums.ratio.sorted { $0.key < $1.key }.reduce(0) { $0 + $1.value }), Float(sums.ratio.count)]
    }

    public func beginStep(_ context: StepContext) {
        guard estimatesKL else { kl = 0; return }
        var sum = 0.0, count = 0.0
        for rank in context.statistics {
            for k in stride(from: 0, to: rank.count - 1, by: 2) { sum += Double(rank[k]); count += Double(rank[k + 1]) }
        }
        kl = count > 0 ? max(0, sum / count) : 0
    }

    public func lossAndGradient(_ input: ObjectiveInput, dlogits: UnsafeMutablePointer<Float>) -> ObjectiveResult {
        let V = input.vocab
        let isLabelled = { (s: StepSequence) in s.origin != .mismatched && s.pairRole != .none }
        let scale = Double(inverseCount(input.sequences.filter(isLabelled).count))
        let sums = SequenceLogRatios(input, name, where: isLabelled)
        var loss = 0.0, coefficient: [Int: Double] = [:]
        var d: [String: Double] = [:], c: [String: Double] = [:]
        for (s, r) in sums.ratio.sorted(by: { $0.key < $1.key }) {
            let desirable = input.sequences[s].pairRole == .chosen
            let (l, dl) = rowLoss(r, desirable: desirable)
            let w = desirable ? desirableWeight : undesirableWeight
            loss += w * l
            coefficient[s] = w * dl * scale
            let side = desirable ? "chosen" : "rejected"
            d["rewards/\(side)", default: 0] += beta * r; c["rewards/\(side)", default: 0] += 1
            d["logps/\(side)", default: 0] += sums.policy[s]!; c["logps/\(side)", default: 0] += 1
        }
        // ∂L/∂z = c_s·(onehot(y) − softmax(z)) on each answer token of row s; the token figures
        // (mean logit per side, entropy) summed alongside, from the same softmax pass.
        var logits = (chosen: 0.0, rejected: 0.0), tokens = (chosen: 0.0, rejected: 0.0), entropy = 0.0
        for r in 0..<input.rows where input.mask[r] != 0 && input.sequenceId[r] >= 0 {
            guard let k = coefficient[Int(input.sequenceId[r])] else { continue }
            let y = lossTarget(input, r, name), z = input.logits + r * V
            entropy += LogitRow.addScaledSoftmax(dlogits + r * V, z, lse: sums.lse[r], V, scale: Float(-k))
            dlogits[r * V + y] += Float(k)
            let mean = Double(Vec.total(z, count: V)) / Double(V)
            if input.sequences[Int(input.sequenceId[r])].pairRole == .chosen {
                logits.chosen += mean; tokens.chosen += 1
            } else {
                logits.rejected += mean; tokens.rejected += 1
            }
        }
        if tokens.chosen > 0 { d["logits/chosen"] = logits.chosen; c["logits/chosen"] = tokens.chosen }
        if tokens.rejected > 0 { d["logits/rejected"] = logits.rejected; c["logits/rejected"] = tokens.rejected }
        if tokens.chosen + tokens.rejected > 0 { d["entropy"] = entropy; c["entropy"] = tokens.chosen + tokens.rejected }
        if !sums.ratio.isEmpty {
            d["kl"] = kl * Double(sums.ratio.count); c["kl"] = Double(sums.ratio.count)
        }
        return ObjectiveResult(loss: loss * scale, diagnostics: d, diagnosticCounts: c)
    }

    /// One row's ℓ (before its weight) and ∂ℓ/∂r.
    func rowLoss(_ r: Double, desirable: Bool) -> (loss: Double, dr: Double) {
        let b = beta, sig = DPOLoss.logistic
        switch (lossType, desirable) {
        case (_, true):   // apo_zero_unpaired's 1 − σ(β·r) too: its kl is 0
            let s = sig(b * (r - kl))
            return (1 - s, -b * s * (1 - s))
        case (.kto, false):
            let s = sig(b * (kl - r))
            return (1 - s, b * s * (1 - s))
        case (.apoZeroUnpaired, false):
            let s = sig(b * r)
            return (s, b * s * (1 - s))
        }
    }

    /// TRL's `rewards/margins`: the step's chosen reward mean − its rejected one, when it has both.
    public func derivedFigures(_ means: [(String, Double)]) -> [(String, Double)] {
        let m = Dictionary(means, uniquingKeysWith: { a, _ in a })
        guard let w = m["rewards/chosen"], let l = m["rewards/rejected"] else { return [] }
        return [("rewards/margins", w - l)]
    }

    /// TRL's advice when the training rows' labels are unbalanced and neither weight is in the
    /// range of the paper's Eq. 8 (λ_D·n_D / (λ_U·n_U) in [1, 4/3]); nil otherwise. Where one
    /// label has no row no weight balances them (TRL counts such a class as 1 row and advises
    /// weights that cannot help): the note says that instead.
    public func balanceNote(desirable nD: Int, undesirable nU: Int) -> String? {
        if (nD == 0) != (nU == 0) {
            let (none, all) = nD == 0 ? ("desirable", "undesirable") : ("undesirable", "desirable")
            return "note: kto: every training row is \(all) (\(nD) desirable, \(nU) undesirable): the \(none) term never trains, and no desirable_weight or undesirable_weight can balance the labels (the KTO paper's Eq. 8, arXiv 2402.01306, weighs both kinds)"
        }
        let d = max(nD, 1), u = max(nU, 1)
        guard d != u else { return nil }
        func round2(_ x: Double) -> Double { (x * 100).rounded() / 100 }
        let dLow = round2(Double(u) * undesirableWeight / Double(d)), dHigh = round2(Double(u) * undesirableWeight / Double(d) * 1.33)
        let uLow = round2(Double(d) * desirableWeight / Double(u) / 1.33), uHigh = round2(Double(d) * desirableWeight / Double(u))
        guard !(dLow...dHigh).contains(desirableWeight) && !(uLow...uHigh).contains(undesirableWeight) else { return nil }
        return "note: kto: \(nD) desirable and \(nU) undesirable training rows, and desirable_weight \(desirableWeight), undesirable_weight \(undesirableWeight) are outside the range of the KTO paper's Eq. 8 (arXiv 2402.01306): set either desirable_weight in [\(dLow), \(dHigh)] or undesirable_weight in [\(uLow), \(uHigh)], not both"
    }
}

/// Each sequence's log-ratio r = Σ_t M_t (log π_θ − log π_ref) over its answer tokens (and the
/// policy's sum alone), for the sequences of a micro-batch that `include` picks, keyed by
/// step-batch index; every picked sequence is present, with or without a loss token. log π_ref
/// comes from the reference's logits, or from its precomputed log-probs
/// (`--precompute-ref-log-probs`, `ReferenceTargets`).
struct SequenceLogRatios {
    var ratio: [Int: Double] = [:], policy: [Int: Double] = [:]
    var lse: [Float]

    init(_ input: ObjectiveInput, _ name: String, where include: (StepSequence) -> Bool) {
        let V = input.vocab, ref = ReferenceTargets(input, name)
        lse = [Float](repeating: 0, count: input.rows)
        for r in 0..<input.rows where input.sequenceId[r] >= 0 {
            let s = Int(input.sequenceId[r])
            precondition(s < input.sequences.count, "objective \(name) needs the step batch's sequences in its input")
            guard include(input.sequences[s]) else { continue }
            if ratio[s] == nil { ratio[s] = 0; policy[s] = 0 }
            guard input.mask[r] != 0 else { continue }
            let y = lossTarget(input, r, name)
            let z = input.logits + r * V
            lse[r] = SoftmaxKernels.logSumExp(z, count: V)
            let logp = Double(z[y] - lse[r])
            policy[s]! += logp
            ratio[s]! += logp - Double(ref.logProb(row: r, target: y))
        }
    }
}
