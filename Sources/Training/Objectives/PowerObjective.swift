import Foundation
import TensorCore

/// The GeneralFamily objective of "Beyond Log Likelihood", arXiv 2510.00526
/// (code: `GaotangLi/Beyond-Log-Likelihood`, key `GeneralFamily-α`; the
/// README's "−p^10" is α = 10, the paper's choice for model-strong tasks such as math).
///
///   L = Σ_t M_t · (1 − p_t^α)/α / N_global,    ∂L/∂z_y = −p^α(1 − p),  ∂L/∂z_v = p^α·p_v  (÷ N_global)
///
/// α → 0 recovers NLL, α = 1 is the `p` objective. Nothing is detached. Normalisation: global
/// loss tokens of the step. Argument: `alpha` (default 10, must be > 0).
public final class PowerObjective: Objective, DetachedEvaluable {
    public let name = "power"
    public let requirements = ObjectiveRequirements()
    public let alpha: Float

    public init(alpha: Float = 10) throws {
        try checkArg(alpha > 0, "power", "alpha must be > 0, got \(alpha)")
        self.alpha = alpha
    }

    public func evaluate(_ input: ObjectiveInput, detached: UnsafePointer<Float>,
                         dlogits: UnsafeMutablePointer<Float>?) -> ObjectiveResult {
        let scale = inverseCount(input.context.globalLossTokens), a = alpha
        var diag = TokenDiagnostics()
        // p^α as exp(α·log p): exact for tiny p where powf would underflow the same way anyway.
        let loss = ObjectiveLosses.probabilityLoss(input, detached: detached, dlogits: dlogits, scale: scale, objective: name,
                                          diag: &diag, include: { _, _ in true }) { _, logp in
            // (1 − p^α)/α as −expm1(α·log p)/α: 1 − p^α cancelled in float32 for small α
            // (α = 1e-9 logged loss 0.0 where −log p ≈ 5.5; the gradient −p^α was right).
            let pa = expf(a * logp)
            return (-expm1f(a * logp) / a, -pa)
        }
        var d: [String: Double] = [:], c: [String: Double] = [:]
        diag.into(&d, &c)
        return ObjectiveResult(loss: loss * Double(scale), diagnostics: d, diagnosticCounts: c)
    }
}
