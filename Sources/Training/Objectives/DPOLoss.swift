import Foundation

/// DPO's per-pair losses under TRL's `DPOConfig.loss_type` names (TRL 1.16,
/// `DPOTrainer.compute_loss`), each a function of the pair's log-ratios c = log π_θ(y_w|x) −
/// log π_ref(y_w|x) and r (the rejected answer's), with Δ = c − r and h = β·Δ. `derivatives`
/// gives ∂ℓ/∂c and ∂ℓ/∂r, from which DPOObjective spreads the gradient over each answer's tokens.
/// `sft` is no pair loss: DPOObjective adds it (and weighs several types by `loss_weights`).
/// TRL's `aot`/`aot_unpaired`, which sort the batch's ratios, are not here.
public enum DPOLoss: String, CaseIterable, Sendable {
    /// −log σ(h): DPO, arXiv 2305.18290 §4 Eq. 7.
    case sigmoid
    /// max(0, 1 − h): the hinge loss of SLiC-HF, arXiv 2305.10425.
    case hinge
    /// (c/n_w − r/n_l − 1/(2β))²: IPO, arXiv 2310.12036 Eq. 17, each log-ratio averaged over its
    /// answer's tokens as TRL does (confirmed with the IPO authors, TRL's comment says): its
    /// completion tokens, one more than its loss tokens where the prompt is empty and no BOS is added.
    case ipo
    /// EXO's pairwise form, arXiv 2402.00856 Eq. 16: KL(softmax(β·(c, r)) ‖ (1 − ε, ε)),
    /// ε = label_smoothing > 0.
    case exoPair = "exo_pair"
    /// NCA's pairwise form, arXiv 2402.05369: −log σ(βc) − ½log σ(−βc) − ½log σ(−βr).
    case ncaPair = "nca_pair"
    /// Provably robust DPO, arXiv 2403.00409: ((1 − ε)·(−log σ(h)) − ε·(−log σ(−h))) / (1 − 2ε),
    /// ε = label_smoothing in [0, ½).
    case robust
    /// BCO's pairwise form, arXiv 2404.04656: −log σ(βc) − log σ(−βr) (TRL 1.16's, no running mean).
    case bcoPair = "bco_pair"
    /// SPPO with hard labels, arXiv 2405.00675 Eq. 4.7: (c − 1/(2β))² + (r + 1/(2β))².
    case sppoHard = "sppo_hard"
    /// APO-zero, arXiv 2408.06266 Eq. 7: 1 − σ(βc) + σ(βr).
    case apoZero = "apo_zero"
    /// APO-down, arXiv 2408.06266 Eq. 8: σ(βc) + 1 − σ(h).
    case apoDown = "apo_down"
    /// DiscoPOP, arXiv 2406.08414 Eq. 5: −log σ(h)·(1 − m) + e^{−h}·m, m = σ(h/τ), τ = discopop_tau
    /// (m not detached, as TRL's).
    case discopop
    /// −log σ(β·(c/n_w − r/n_l)): TRL's length-normalised sigmoid.
    case sigmoidNorm = "sigmoid_norm"
    /// −(1/N_w) Σ log p over the chosen answers' loss tokens, N_w of them in the step batch:
    /// TRL's `sft`, the NLL term of RPO (Pang et al., arXiv 2404.19733, Eq. 6: sigmoid + α·sft)
    /// and of MPO (Wang et al., arXiv 2411.10442, §3.2: sigmoid, bco_pair and sft weighted
    /// 0.8, 0.2, 1). A mean over tokens, not pairs: DPOObjective computes it; `loss` gives 0.
    case sft

    /// What the pair's loss reads: β, label_smoothing ε, discopop_tau τ.
    public struct Settings: Sendable {
        public var beta: Double, labelSmoothing: Double, tau: Double
    }

    /// σ(x) (`logistic`: `sigmoid` is a loss type) and softplus(x) = log(1 + eˣ) = −log σ(−x), without overflow (also DPODivergence's).
    static func logistic(_ x: Double) -> Double { x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)) }
    static func softplus(_ x: Double) -> Double { x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)) }

    public var readsLabelSmoothing: Bool { self == .exoPair || self == .robust }
    public var readsTau: Bool { self == .discopop }

    /// (ℓ, ∂ℓ/∂c, ∂ℓ/∂r) for log-ratios c and r of answers with n_w and n_l loss tokens (≥ 1).
    public func loss(c: Double, r: Double, chosenTokens nw: Double, rejectedTokens nl: Double,
                     _ s: Settings) -> (loss: Double, dc: Double, dr: Double) {
        let b = s.beta, h = b * c - b * r   // β·c − β·r, as the rewards are logged
        let sig = Self.logistic, softplus = Self.softplus
        switch self {
        case .sigmoid:
            let g = -sig(-h) * b
            return (softplus(-h), g, -g)
        case .hinge:
            let g = 1 - h > 0 ? -b : 0
            return (max(0, 1 - h), g, -g)
        case .ipo:
            let a = c / nw - r / nl - 1 / (2 * b)
            return (a * a, 2 * a / nw, -2 * a / nl)
        case .exoPair:
            let e = s.labelSmoothing, q = sig(h)
            let loss = q * (-softplus(-h) - log1p(-e)) + (1 - q) * (-softplus(h) - log(e))
            let g = q * (1 - q) * (h - log1p(-e) + log(e)) * b
            return (loss, g, -g)
        case .ncaPair:
            return (softplus(-b * c) + 0.5 * softplus(b * c) + 0.5 * softplus(b * r),
                    b * (-sig(-b * c) + 0.5 * sig(b * c)), 0.5 * b * sig(b * r))
        case .robust:
            let e = s.labelSmoothing, k = 1 - 2 * e
            let g = (-(1 - e) * sig(-h) - e * sig(h)) / k * b
            return (((1 - e) * softplus(-h) - e * softplus(h)) / k, g, -g)
        case .bcoPair:
            return (softplus(-b * c) + softplus(b * r), -b * sig(-b * c), b * sig(b * r))
        case .sppoHard:
            let w = c - 0.5 / b, l = r + 0.5 / b
            return (w * w + l * l, 2 * w, 2 * l)
        case .apoZero:
            let sc = sig(b * c), sr = sig(b * r)
            return (1 - sc + sr, -b * sc * (1 - sc), b * sr * (1 - sr))
        case .apoDown:
            let sc = sig(b * c), sh = sig(h)
            return (sc + 1 - sh, b * sc * (1 - sc) - b * sh * (1 - sh), b * sh * (1 - sh))
        case .discopop:
            let m = sig(h / s.tau), dm = m * (1 - m) / s.tau, ex = exp(-h), lg = softplus(-h)
            let dh = -sig(-h) * (1 - m) - lg * dm - ex * m + ex * dm
            return (lg * (1 - m) + ex * m, dh * b, -dh * b)
        case .sigmoidNorm:
            let hn = b * (c / nw - r / nl), g = -sig(-hn) * b
            return (softplus(-hn), g / nw, -g / nl)
        case .sft:
            return (0, 0, 0)
        }
    }
}
