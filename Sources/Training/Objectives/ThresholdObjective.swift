import Foundation
import TensorCore

/// The thresholded objectives of "Beyond Log Likelihood", arXiv 2510.00526
/// (code: `GaotangLi/Beyond-Log-Likelihood` @220589d,
/// `FSDPSFTTrainer._compute_loss_and_backward`, keys `OnlyTopP-q`, `OnlyBottomP-q`,
/// `OnlyTopLogP-q`, `OnlyBottomLogP-q`). The threshold is always on p; "logp" names the loss:
///
///   top-p        (1 − p)·1[p ≥ q]   0 ≤ q < 1        bottom-p     (1 − p)·1[p ≤ q]   0 < q ≤ 1
///   top-logp     −log p·1[p ≥ q]    0 ≤ q < 1        bottom-logp  −log p·1[p ≤ q]    0 < q ≤ 1
///
///   L = Σ_t M_t·S_t·f(p_t) / Σ_global M·S,  S_t = the indicator (no gradient through it).
///
/// Masked tokens leave the numerator *and* the denominator (the reference replaces mask by
/// mask·1[·] before its mean): the normaliser is the number of selected tokens in the whole
/// optimizer step on all ranks, which a statistics pass provides — `statistics()` returns the
/// micro-batch's selected count, `beginStep` sums the gathered counts. p itself is not detached.
/// Arguments: `variant` (top-p | bottom-p | top-logp | bottom-logp, default top-p) and `q`
/// (default 0.5, the reference table's OnlyTopP-0.5).
public final class ThresholdObjective: Objective, DetachedEvaluable {
    public enum Variant: String, CaseIterable, Sendable {
        case topP = "top-p", bottomP = "bottom-p", topLogP = "top-logp", bottomLogP = "bottom-logp"
        var keepsTop: Bool { self == .topP || self == .topLogP }
        var logLoss: Bool { self == .topLogP || self == .bottomLogP }
    }
    public let name = "threshold"
    public let requirements = ObjectiveRequirements(statisticsPass: true)
    public let variant: Variant
    public let q: Float
    private let selected = StepCache<Double>()

    public init(variant: String = "top-p", q: Float = 0.5) throws {
        guard let v = Variant(rawValue: variant) else {
            throw ObjectiveError("objective threshold: variant=\(variant) is not one of \(Variant.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if v.keepsTop {
            try checkArg(q >= 0 && q < 1, "threshold", "q must be in [0, 1) for variant \(variant), got \(q)")
        } else {
            try checkArg(q > 0 && q <= 1, "threshold", "q must be in (0, 1] for variant \(variant), got \(q)")
        }
        self.variant = v; self.q = q
    }

    /// The indicator, evaluated on sg(p): identical in the statistics and gradient passes.
    @inline(__always)
    func isSelected(logp: Float) -> Bool {
        let p = expf(logp)
        return variant.keepsTop ? p >= q : p <= q
    }

    public func statistics(_ input: ObjectiveInput) -> [Float] {
        let V = input.vocab
        var n: Float = 0
        for r in 0..<input.rows where input.mask[r] != 0 {
            let y = lossTarget(input, r, name), z = input.logits + r * V
            if isSelected(logp: z[y] - SoftmaxKernels.logSumExp(z, count: V)) { n += input.mask[r] }
        }
        return [n]
    }

    static func globalSelected(_ context: StepContext) -> Double {
        context.statistics.reduce(0) { $0 + $1.reduce(0) { $0 + Double($1) } }
    }

    public func beginStep(_ context: StepContext) { selected.store(context, Self.globalSelected) }

    public func evaluate(_ input: ObjectiveInput, detached: UnsafePointer<Float>,
                         dlogits: UnsafeMutablePointer<Float>?) -> ObjectiveResult {
        let globalSelected = selected.value(input.context, objective: name, Self.globalSelected)
        let scale = inverseCount(globalSelected)
        var diag = TokenDiagnostics()
        var kept = 0.0
        let logLoss = variant.logLoss
        let loss = ObjectiveLosses.probabilityLoss(input, detached: detached, dlogits: dlogits, scale: scale, objective: name,
                                          diag: &diag, include: { _, logp in
            let s = self.isSelected(logp: logp)
            if s { kept += 1 }
            return s
        }) { p, logp in logLoss ? (-logp, -1) : (1 - p, -p) }
        var d: [String: Double] = ["kept_ratio": kept], c: [String: Double] = ["kept_ratio": diag.count]
        diag.into(&d, &c)
        return ObjectiveResult(loss: loss * Double(scale), diagnostics: d, diagnosticCounts: c)
    }
}
