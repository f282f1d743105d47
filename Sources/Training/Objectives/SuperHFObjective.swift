import Foundation
import TensorCore

/// SuperHF's fine-tuning loss (Mukobi et al., arXiv 2310.16763, §3; public code
/// `openfeedback/superhf` `training.py::finetune_language_model`): supervised fine-tuning on
/// the reward-filtered completions (`--self-train superhf`, `SelfTraining/SuperHFRound.swift`)
/// plus a KL penalty to the initial model:
///
///   L = Σ_t M_t·[ −log p_θ(y_t) + c·KL(π_0 ‖ π_θ)_t ] / N_global,
///   KL_t = Σ_v q_v (log q_v − log p_v)    (`KLDivLoss(log p_θ, log q, log_target=True)`),
///   ∂L/∂z_v = M_t·[ (1 + c)·p_v − c·q_v − [v = y_t] ] / N_global.
///
/// π_0 is frozen and detached: the initial weights (the code's base model with the LoRA
/// adapters off) or `--ref-model` (`input.referenceLogits`). Argument `kl_coefficient` c (the
/// code's name; default 0.35, its experiments' default; ≥ 0). Normalisation: the global loss
/// tokens of the step, for the NLL and the KL alike. The public code adds, per minibatch of 2,
/// c times the sum of each completion's token-mean KL to the token-mean NLL (and clamps that
/// KL at 0, which an exact full-vocabulary KL never needs); a per-token mean over the global
/// batch keeps the result independent of the rank count and of micro-batching.
/// Diagnostics: `kl_ref` (mean KL per loss token) besides mean p and entropy. The loop is
/// `KLAnchor` (ASFT's, with weight 1 instead of sg(p)).
public final class SuperHFObjective: Objective {
    public let name = "superhf"
    public let requirements = ObjectiveRequirements(referenceModel: true)
    public let klCoefficient: Float

    public init(klCoefficient: Float = 0.35) throws {
        try checkArg(klCoefficient >= 0, "superhf", "kl_coefficient must be >= 0, got \(klCoefficient)")
        self.klCoefficient = klCoefficient
    }

    public func lossAndGradient(_ input: ObjectiveInput, dlogits: UnsafeMutablePointer<Float>) -> ObjectiveResult {
        KLAnchor.evaluate(input, objective: name, lambda: klCoefficient, dlogits: dlogits) { _, _, _ in 1 }
    }
}
