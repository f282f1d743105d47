import Foundation
import TensorCore

/// Contrastive Preference Optimization, Xu et al., arXiv:2401.08417, §2.3 (Eq. 3), as TRL's
/// `CPOTrainer` (trl.experimental, 1.16) computes it — no reference model:
///
///   ℓ_w, ℓ_l = log π_θ of the chosen / rejected answer: the sum over its loss tokens, or the
///              mean for loss_type ipo and simpo (TRL's `average_log_prob`),
///   u(ℓ)     = ℓ, or AlphaPO's (1 − e^{−αℓ})/α (Gupta et al., arXiv 2501.03884) when alpha ≠ 0,
///   Δ        = u(ℓ_w) − u(ℓ_l),
///   L        = (1/P) Σ_pairs ℓ_type(Δ) + cpo_alpha·(1/N_w) Σ_{chosen loss tokens} −log p,
///
/// with ℓ_sigmoid = −(1 − ε)·log σ(βΔ) − ε·log σ(−βΔ) (ε = label_smoothing), ℓ_hinge =
/// max(0, 1 − βΔ), ℓ_ipo = (Δ − 1/(2β))², and ℓ_simpo the sigmoid's at Δ − γ/β (SimPO, Meng et
/// al., arXiv 2405.14734, Eq. 6, γ = simpo_gamma; TRL's loss_type=simpo with cpo_alpha=0 is SimPO
/// itself, the default cpo_alpha=1 CPO-SimPO). P pairs and N_w chosen tokens are the whole step
/// batch's, so the loss does not depend on the rank count (TRL's NLL is each device's mean).
/// Diagnostics, TRL's names: `rewards/chosen`, `rewards/rejected` (β·u), `rewards/margins`,
/// `rewards/accuracies`, `logps/chosen`, `logps/rejected` (ℓ), means over pairs; `nll_loss` (the
/// chosen tokens' mean NLL; 0 at cpo_alpha 0, as TRL, which does not compute it then); `logits/*`,
/// `mean_token_accuracy` and `entropy` over loss tokens, as DPOObjective (TRL's CPO averages
/// `logits/*` over every position, padding included).
///
/// tpo (ObjectiveRegistry+TPO.swift) is this loss with the NLL term on a third, gold answer (`nllRole` .gold).
public final class CPOObjective: Objective {
    public enum LossType: String, CaseIterable, Sendable { case sigmoid, hinge, ipo, simpo }

    public let name: String
    public let requirements: ObjectiveRequirements
    let beta: Double, labelSmoothing: Double, lossType: LossType, cpoAlpha: Double, simpoGamma: Double, alpha: Double
    /// Whose loss tokens the NLL term reads: the chosen answers' (CPO), or the gold ones (TPO).
    let nllRole: PairRole

    public convenience init(beta: Float = 0.1, labelSmoothing: Float = 0, lossType: LossType = .sigmoid, cpoAlpha: Float = 1,
                            simpoGamma: Float = 0.5, alpha: Float = 0) throws {
        try self.init(name: "cpo", beta: beta, labelSmoothing: labelSmoothing, lossType: lossType, cpoAlpha: cpoAlpha,
                      simpoGamma: simpoGamma, alpha: alpha, nllRole: .chosen, alphaName: "cpo_alpha")
    }

    /// `alphaName`: the NLL weight's argument, named in a refusal (TPO's `tpo_alpha`).
    init(name: String, beta: Float, labelSmoothing: Float, lossType: LossType, cpoAlpha: Float, simpoGamma: Float,
         alpha: Float, nllRole: PairRole, alphaName: String) throws {
        try checkArg(beta > 0, name, "beta must be > 0, got \(beta)")
        try checkArg(labelSmoothing >= 0 && labelSmoothing < 0.5, name, "label_smoothing must be in [0, 0.5), got \(labelSmoothing)")
        try checkArg(cpoAlpha >= 0, name, "\(alphaName) must be ≥ 0, got \(cpoAlpha)")
        self.name = name; self.nllRole = nllRole
        self.beta = Double(beta); self.labelSmoothing = Double(labelSmoothing); self.lossType = lossType
        self.cpoAlpha = Double(cpoAlpha); self.simpoGamma = Double(simpoGamma); self.alpha = Double(alpha)
        var r = ObjectiveRequirements(pairs: true)
        r.goldAnswers = nllRole == .gold && cpoAlpha != 0   // TRL's TPO drops the gold branch at tpo_alpha 0
        requirements = r
    }

    /// ℓ and ∂ℓ/∂Δ of one pair.
    func pairLoss(_ delta: Double) -> (loss: Double, slope: Double) {
        let b = beta, e = labelSmoothing
        switch lossType {
        case .sigmoid, .simpo:
            let h = b * (lossType == .simpo ? delta - simpoGamma / b : delta)
            return ((1 - e) * DPOLoss.softplus(-h) + e * DPOLoss.softplus(h),
                    (-(1 - e) * DPOLoss.logistic(-h) + e * DPOLoss.logistic(h)) * b)
        case .hinge:
            return (max(0, 1 - b * delta), 1 - b * delta > 0 ? -b : 0)
        case .ipo:
            let a = delta - 1 / (2 * b)
            return (a * a, 2 * a)
        }
    }

    /// u(ℓ) and u′(ℓ): ℓ itself, or AlphaPO's reward.
    func reward(_ l: Double) -> (value: Double, slope: Double) {
        guard alpha != 0 else { return (l, 1) }
        let g = exp(-alpha * l)
        return ((1 - g) / alpha, g)
    }

    public func lossAndGradient(_ input: ObjectiveInput, dlogits: UnsafeMutablePointer<Float>) -> ObjectiveResult {
        let lp = PairLogProbs(input, name, nllRole: nllRole)
        let averaged = lossType == .ipo || lossType == .simpo
        let scale = Double(inverseCount(input.globalPairs))
        var loss = 0.0, perAnswer: [Int: Double] = [:]
        var rewards: [(chosen: Double, rejected: Double)] = [], logps = rewards
        for (s, l) in lp.pairs(input, name) {
            let lw = averaged ? lp.mean(s) : lp.sum[s]!, ll = averaged ? lp.mean(l) : lp.sum[l]!
            let uw = reward(lw), ul = reward(ll)
            let pair = pairLoss(uw.value - ul.value)
            loss += pair.loss
            // ∂L/∂(sum of the answer's log-probs): through the mean when averaged.
            perAnswer[s] = scale * pair.slope * uw.slope / (averaged ? max(lp.tokens[s]!, 1) : 1)
            perAnswer[l] = -scale * pair.slope * ul.slope / (averaged ? max(lp.tokens[l]!, 1) : 1)
            rewards.append((beta * uw.value, beta * ul.value)); logps.append((lw, ll))
        }
        let nllScale = Double(inverseCount(lp.nllTokens)), nll = lp.nll(input)
        lp.addGradient(input, dlogits, perAnswer: perAnswer, perNLLToken: -cpoAlpha * nllScale, name)
        var (d, c) = PairLogProbs.diagnostics(rewards: rewards, logps: logps, lp.figures)
        // TRL's CPO logs 0 at cpo_alpha 0; tpo then reads no gold answer and has no NLL to log.
        if nllRole == .chosen || cpoAlpha != 0 { d["nll_loss"] = cpoAlpha != 0 ? nll.sum : 0; c["nll_loss"] = nll.tokens }
        return ObjectiveResult(loss: loss * scale + cpoAlpha * nll.sum * nllScale, diagnostics: d, diagnosticCounts: c)
    }
}
