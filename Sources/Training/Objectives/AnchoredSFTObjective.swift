import Foundation
import TensorCore

/// Anchored SFT (ASFT), arXiv 2509.23753
/// (code: `zhuchichi56/ASFT` `train_v2.py::EnhancedTrainer.compute_loss`,
/// mode `asft`; LLaMA-Factory `asft_loss_func`). DFT anchored to a frozen reference by a KL:
///
///   L = Σ_t M_t·[ sg(p_t)·(−log p_t) + λ·KL(π_ref ‖ π_θ)_t ] / N_global,
///   KL_t = Σ_v q_v (log q_v − log p_v)   (`F.kl_div(log_softmax(θ), softmax(ref)).sum(-1)`),
///   ∂L/∂z = M·[ sg(p)(softmax − onehot(y)) + λ(p_θ − q) ] / N_global.
///
/// Detached: the DFT weight p_t and the whole reference distribution q (frozen: the initial
/// weights or `--ref-model`, `input.referenceLogits`). Normalisation: global loss tokens (the
/// official trainer's micro-batch mean "A" made split-invariant). Argument: `kl_weight` λ
/// (default 0.1, the official default; the README example uses 0.05; must be ≥ 0).
/// Diagnostics: mean KL per loss token besides mean p and entropy.
public final class AnchoredSFTObjective: Objective, DetachedEvaluable {
    public let name = "asft"
    public let requirements = ObjectiveRequirements(referenceModel: true)
    public let klWeight: Float

    public init(klWeight: Float = 0.1) throws {
        try checkArg(klWeight >= 0, "asft", "kl_weight must be >= 0, got \(klWeight)")
        self.klWeight = klWeight
    }

    public func evaluate(_ input: ObjectiveInput, detached: UnsafePointer<Float>,
                         dlogits: UnsafeMutablePointer<Float>?) -> ObjectiveResult {
        KLAnchor.evaluate(input, objective: name, lambda: klWeight, dlogits: dlogits) { r, y, logp in
            expf(LogitRow.detachedLogProb(detached, input.logits, row: r, input.vocab, target: y, liveLogP: logp))
        }
    }
}
