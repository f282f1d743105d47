import Foundation
import TensorCore

/// The `p` objective of "Beyond Log Likelihood: Probability-Based Objectives for Supervised
/// Fine-Tuning across the Model Capability Continuum", arXiv 2510.00526
/// (code: `GaotangLi/Beyond-Log-Likelihood`, key `p`).
///
///   L = Σ_t M_t · (1 − p_t) / N_global,     ∂L/∂z_y = −p(1 − p),  ∂L/∂z_v = p·p_v   (÷ N_global)
///
/// Nothing is detached: p is differentiated through. Normalisation: global loss tokens of the
/// step (the reference code's per-micro-batch mean made split-invariant). Its gradient equals
/// DFT's (tested). No arguments.
public final class PObjective: Objective, DetachedEvaluable {
    public let name = "p"
    public let requirements = ObjectiveRequirements()
    public init() {}

    public func evaluate(_ input: ObjectiveInput, detached: UnsafePointer<Float>,
                         dlogits: UnsafeMutablePointer<Float>?) -> ObjectiveResult {
        let scale = inverseCount(input.context.globalLossTokens)
        var diag = TokenDiagnostics()
        let loss = ObjectiveLosses.probabilityLoss(input, detached: detached, dlogits: dlogits, scale: scale, objective: name,
                                          diag: &diag, include: { _, _ in true }) { p, _ in (1 - p, -p) }
        var d: [String: Double] = [:], c: [String: Double] = [:]
        diag.into(&d, &c)
        return ObjectiveResult(loss: loss * Double(scale), diagnostics: d, diagnosticCounts: c)
    }
}
