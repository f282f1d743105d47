import Foundation
import TensorCore

/// Token-Adaptive Loss Reweighting (TALR), arXiv 2509.20758 (reimplementation:
/// `shankarp8/distillation-retains-capabilities` `src/disc/objectives.py::talr_loss`,
/// `compute_dynamic_tau`; the paper has no official code).
///
/// The paper solves min_w Σ w_i ℓ_i + τ Σ w_i log w_i on the simplex, w_i ∝ p_i^{1/τ}. We follow
/// the reimplementation, which drops the simplex normalisation (the paper form × N/Σw) and
/// floors the weight so it cannot collapse onto a few tokens:
///
///   w_t = sg(max(max(p_t, 1e-6)^{1/τ}, floor)),   L = Σ_t M_t·w_t·(−log p_t) / N_global,
///   ∂L/∂z = M·w·(softmax − onehot(y)) / N_global.     τ = 1 (and p ≥ floor) is DFT.
///
/// τ: the `tau` argument fixes it; otherwise it is a batch statistic, τ = max(median over
/// sequences of the sequence's mean token loss, 1e-6). The reimplementation takes that median
/// over its (micro-)batch with `torch.median`, i.e. the *lower* middle value for an even count;
/// we take the lower median over every sequence of the *global* batch — gathered by the
/// statistics pass as (Σℓ, count) per sequence, sequences without loss tokens left out — so τ
/// does not depend on rank count or micro-batching.
/// Detached: w (and τ). Normalisation: global loss tokens (the reimplementation's
/// Σwℓ/#valid made global). Arguments: `tau` (unset = dynamic; > 0), `floor` (0.01, in [0, 1]).
/// Diagnostics: mean weight, τ.
public final class TALRObjective: Objective, DetachedEvaluable {
    public let name = "talr"
    public let requirements: ObjectiveRequirements
    public let fixedTau: Float?
    public let floor: Float
    private let dynamicTau = StepCache<Float>()

    public init(tau: Float? = nil, floor: Float = 0.01) throws {
        if let tau { try checkArg(tau > 0, "talr", "tau must be > 0, got \(tau)") }
        try checkArg(floor >= 0 && floor <= 1, "talr", "floor must be in [0, 1], got \(floor)")
        fixedTau = tau; self.floor = floor
        requirements = ObjectiveRequirements(statisticsPass: tau == nil)
    }

    /// Per sequence of this micro-batch: (Σ_t ℓ_t, #loss tokens), flattened.
    public func statistics(_ input: ObjectiveInput) -> [Float] {
        guard fixedTau == nil else { return [] }
        let V = input.vocab
        let seq = SequenceIndex(input.sequenceId)
        var sums = [Double](repeating: 0, count: seq.count), counts = [Double](repeating: 0, count: seq.count)
        for r in 0..<input.rows where input.mask[r] != 0 && seq.slot[r] >= 0 {
            let y = lossTarget(input, r, name), z = input.logits + r * V
            sums[seq.slot[r]] += Double(SoftmaxKernels.logSumExp(z, count: V) - z[y])
            counts[seq.slot[r]] += 1
        }
        var out: [Float] = []
        for s in 0..<seq.count where counts[s] > 0 { out += [Float(sums[s]), Float(counts[s])] }
        return out
    }

    static func medianTau(_ context: StepContext) -> Float {
        var means: [Float] = []
        for rank in context.statistics {
            var i = 0
            while i + 1 < rank.count {
                if rank[i + 1] > 0 { means.append(rank[i] / rank[i + 1]) }
                i += 2
            }
        }
        guard !means.isEmpty else { return 1 }
        means.sort()
        return max(means[(means.count - 1) / 2], 1e-6)   // lower median, as torch.median
    }

    public func beginStep(_ context: StepContext) {
        if fixedTau == nil { dynamicTau.store(context, Self.medianTau) }
    }

    public func evaluate(_ input: ObjectiveInput, detached: UnsafePointer<Float>,
                         dlogits: UnsafeMutablePointer<Float>?) -> ObjectiveResult {
        let tau = fixedTau ?? dynamicTau.value(input.context, objective: name, Self.medianTau)
        let invTau = 1 / tau, floor = self.floor
        let scale = inverseCount(input.context.globalLossTokens)
        var diag = TokenDiagnostics()
        let (loss, sumW) = ObjectiveLosses.weightedNLL(input, detached: detached, dlogits: dlogits, scale: scale,
                                              objective: name, diag: &diag) { _, logp in
            max(expf(max(logp, logf(1e-6)) * invTau), floor)
        }
        var d: [String: Double] = ["mean_weight": sumW, "tau": Double(tau) * diag.count]
        var c: [String: Double] = ["mean_weight": diag.count, "tau": diag.count]
        diag.into(&d, &c)
        return ObjectiveResult(loss: loss * Double(scale), diagnostics: d, diagnosticCounts: c)
    }
}
