import Foundation

/// The f-divergence DPO's loss regularises with (f-DPO, Wang et al., arXiv 2309.16240, §4;
/// TRL's `f_divergence_type`): each answer's log-ratio u = log π_θ/π_ref enters the loss
/// through f′ of the likelihood ratio, g(u) = f′(e^u), in place of u itself (reverse KL, DPO's).
/// TRL 1.16 allows it for the loss types built on the chosen − rejected difference (and sft,
/// which reads neither ratio).
public enum DPODivergence: String, CaseIterable, Sendable {
    /// g(u) = u: DPO.
    case reverseKL = "reverse_kl"
    /// g(u) = 1 − e^{−u}.
    case forwardKL = "forward_kl"
    /// g(u) = log 2 + log σ(u).
    case jsDivergence = "js_divergence"
    /// g(u) = (e^{(α−1)u} − 1)/(α − 1), α = f_alpha_divergence_coef (default 0.5); the exponent
    /// capped at 80, as TRL caps it for float32 (the gradient 0 beyond), and u itself at |α − 1| < 1e-6.
    case alphaDivergence = "alpha_divergence"

    /// The loss types TRL 1.16 lets a non-default divergence change (`DPOTrainer.__init__`).
    public static let lossTypes: Set<DPOLoss> = [.sigmoid, .sigmoidNorm, .hinge, .ipo, .exoPair, .robust, .discopop, .sft]

    /// (g(u), g′(u)).
    public func score(_ u: Double, alpha: Double) -> (value: Double, slope: Double) {
        switch self {
        case .reverseKL: return (u, 1)
        case .forwardKL: let e = exp(-u); return (1 - e, e)
        case .jsDivergence:   // log σ(u) = −softplus(−u); its slope 1 − σ(u)
            return (log(2) - DPOLoss.softplus(-u), 1 - DPOLoss.logistic(u))
        case .alphaDivergence:
            guard abs(alpha - 1) >= 1e-6 else { return (u, 1) }
            let t = (alpha - 1) * u
            return t > 80 ? ((exp(80) - 1) / (alpha - 1), 0) : ((exp(t) - 1) / (alpha - 1), exp(t))
        }
    }
}
