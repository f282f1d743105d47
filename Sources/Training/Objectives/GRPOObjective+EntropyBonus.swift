import Foundation
import TensorCore

/// TRL's `entropy_coef` c: an entropy bonus, L = L_policy − c·H̄, H̄ the mean entropy of
/// softmax(z/T) over the step's loss tokens (over the top-ρ tokens under
/// `top_entropy_quantile`, as TRL's `effective_mask`), the same for every `loss_type` (TRL does
/// not rescale it to a loss type's normaliser). Its gradient is not detached:
/// ∂H/∂z_v = −p_v·(log p_v + H). TRL takes the mean per micro-batch of every process, and DDP
/// averages the processes' gradients, (1/P)·Σ_p H̄_p; here H̄ is the token mean over the whole
/// step (all ranks and micro-batches), the same at any rank count — TRL's with one process and
/// one micro-batch, or with processes of equal loss-token counts.
///
/// With `use_adaptive_entropy` (He et al., "Skywork Open Reasoner 1", arXiv 2505.22312, §3:
/// MAGIC's adaptive entropy control; TRL's), c starts at `entropy_coef` and after every optimizer step
/// moves by `entropy_coef_delta` — up when that step's H̄ was at or below `entropy_target`, down
/// otherwise — within [`entropy_coef_min`, `entropy_coef_max`]; the bonus applies only while the
/// last step's H̄ was at or below the target (none at the first step). The coefficient and the
/// last H̄ are checkpointed (`AdaptiveEntropyCoefficient`). With a bonus, each step logs TRL's
/// `entropy_coef` (after the update, as TRL logs it) and `policy_loss` (the loss without the
/// bonus), and under ρ < 1 `entropy/top_quantile_mean` (H̄ of the kept tokens; `entropy` is of
/// every loss token). Coefficients are kept in Double, as TRL's Python floats.
extension GRPOObjective {
    /// The coefficient this step applies: c, or 0 while the adaptive controller holds it off.
    var appliedEntropyCoef: Float { Float(appliedEntropyCoefficient) }
    var appliedEntropyCoefficient: Double {
        guard let adaptive = adaptiveEntropy else { return entropyCoef }
        return adaptive.lastEntropy <= adaptive.target ? adaptive.coef : 0
    }

    /// Whether there is a bonus (TRL's `_entropy_bonus_enabled`: a coefficient, or the controller).
    var entropyBonusEnabled: Bool { entropyCoef != 0 || adaptiveEntropy != nil }

    /// H̄'s normaliser: the step's loss tokens the bonus acts on (at least 1).
    func entropyBonusTokens(_ input: ObjectiveInput) -> Float {
        let n = topEntropyQuantile < 1
            ? highEntropy.selection(input.context, objective: name).kept.count
            : input.context.globalLossTokens
        return Float(max(n, 1))
    }

    /// Row r's share of −c·H̄ added to dlogits; returns −(c/N)·m·H_r for the loss. `coef` is
    /// c/N (0: only the entropy, for the controller's measure).
    @inline(__always)
    func addEntropyBonus(_ input: ObjectiveInput, row r: Int, lse: Float, coef: Float, dlogits: UnsafeMutablePointer<Float>) -> (loss: Double, entropy: Double) {
        let V = input.vocab, m = input.mask[r]
        let h = RevealedTokens.addEntropyBonus(coef != 0 ? dlogits + r * V : nil, input.logits + r * V, lse: lse, V, scale: coef * m)
        return (-Double(coef * m) * h, h)
    }

    /// After a step that was applied: TRL's `policy_loss` (the loss without the bonus, L + c·H̄
    /// with this step's c), the controller's update from the step's H̄ (the reported `entropy`,
    /// or under ρ < 1 the kept tokens' `entropy/top_quantile_mean`), and the coefficient to log.
    public func endStep(loss: Double, diagnostics: [(String, Double)]) -> [(String, Double)] {
        guard entropyBonusEnabled else { return [] }
        let key = topEntropyQuantile < 1 ? Self.keptEntropyKey : "entropy"
        let h = diagnostics.first { $0.0 == key }?.1 ?? 0
        let policyLoss = ("policy_loss", loss + Double(appliedEntropyCoef) * h)   // the coefficient the step applied, in float32
        guard let adaptive = adaptiveEntropy else { return [policyLoss, ("entropy_coef", entropyCoef)] }
        adaptive.update(measured: h)
        return [policyLoss, ("entropy_coef", adaptive.coef)]
    }

    /// The mean entropy of the tokens the bonus acts on under ρ < 1.
    static let keptEntropyKey = "entropy/top_quantile_mean"
}

/// The adaptive controller's state (Skywork-OR1 §3, TRL's `use_adaptive_entropy`): the
/// coefficient and the last step's measured entropy, in Double as TRL keeps them (Python floats).
public final class AdaptiveEntropyCoefficient: StatefulComponent {
    public let stateName = "adaptive_entropy"
    public private(set) var coef: Double
    /// The last applied step's H̄; +∞ before the first, so the first step applies no bonus.
    public private(set) var lastEntropy = Double.infinity
    let low: Double, high: Double, delta: Double, target: Double

    init(initial: Double, min low: Double, max high: Double, delta: Double, target: Double) {
        coef = initial; self.low = low; self.high = high; self.delta = delta; self.target = target
    }

    func update(measured h: Double) {
        coef = h <= target ? Swift.min(coef + delta, high) : Swift.max(coef - delta, low)
        lastEntropy = h
    }

    public func saveState() -> ComponentState {
        ComponentState(values: ["coef_and_last_entropy": .words([coef.bitPattern, lastEntropy.bitPattern])])
    }

    public func restoreState(_ state: ComponentState, step: Int) throws {
        let w = try state.words("coef_and_last_entropy")
        guard w.count == 2 else { throw StateError(.value, "coef_and_last_entropy", "holds \(w.count) values, expected 2") }
        let c = Double(bitPattern: w[0]), h = Double(bitPattern: w[1])
        guard c.isFinite else { throw StateError(.value, "coef_and_last_entropy", "coefficient \(c) is not finite") }
        guard h >= 0 else { throw StateError(.value, "coef_and_last_entropy", "entropy \(h) is not ≥ 0 (+∞ before the first step)") }
        coef = c; lastEntropy = h
    }
}
