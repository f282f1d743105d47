import Foundation
import TensorCore

/// Dynamic Fine-Tuning (DFT), "On the Generalization of SFT: A Reinforcement Learning
/// Perspective with Reward Rectification", arXiv 2508.05629 (code:
/// `yongliang-wu/DFT` `fsdp_dft_trainer.py`, TRL `loss_type="dft"`).
///
///   L = Σ_t M_t · sg(p_t) · (−log p_t) / N_global,     ∂L/∂z = M·sg(p)·(softmax(z) − onehot(y)) / N_global
///   (∂L/∂z_y = p(p − 1): the gradient of the `p` objective, with a different loss value).
///
/// Detached: the weight p_t. Normalisation: the global loss-token count of the optimizer step
/// (TRL's "B"); the official verl trainer uses a per-micro-batch mean ("A"), which depends on
/// how the batch is split, so we take the rank-count-invariant global form. No arguments.
public final class DFTObjective: Objective, DetachedEvaluable {
    public let name = "dft"
    public let requirements = ObjectiveRequirements()
    public init() {}

    public func evaluate(_ input: ObjectiveInput, detached: UnsafePointer<Float>,
                         dlogits: UnsafeMutablePointer<Float>?) -> ObjectiveResult {
        let scale = inverseCount(input.context.globalLossTokens)
        var diag = TokenDiagnostics()
        let (loss, _) = ObjectiveLosses.weightedNLL(input, detached: detached, dlogits: dlogits, scale: scale,
                                           objective: name, diag: &diag) { _, logp in expf(logp) }
        var d: [String: Double] = [:], c: [String: Double] = [:]
        diag.into(&d, &c)
        return ObjectiveResult(loss: loss * Double(scale), diagnostics: d, diagnosticCounts: c)
    }
}
