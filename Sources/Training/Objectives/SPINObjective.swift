import Foundation
import TensorCore

/// Self-Play Fine-Tuning, Chen et al., arXiv 2401.01335, §4.1 (Eq. 4.7) and the public
/// `spin_loss` (uclaml/SPIN `spin/alignment/trainer.py`): DPO's loss (`DPOObjective`) with the
/// gold answer y as the chosen and the opponent's own answer y′ as the rejected sequence, and the
/// opponent π_t — the model frozen at the start of iteration t — as the reference:
///
///   L = (1/P) Σ_pairs −log σ(β[(log π_θ(y) − log π_t(y)) − (log π_θ(y′) − log π_t(y′))]).
///
/// An iteration is `iteration_steps` optimizer steps: the trainer's old-policy snapshot is the
/// opponent, copied from the model every `iteration_steps` steps (and checkpointed as
/// `old_policy`), and `SPINProducer` samples y′ from it and links each pair. Arguments: `beta`
/// (0.1, as SPIN's configs), `iteration_steps` (100).
public final class SPINObjective: Objective {
    public let name = "spin"
    public let requirements: ObjectiveRequirements
    let dpo: DPOObjective
    public var beta: Float { dpo.beta }
    public var iterationSteps: Int { requirements.oldPolicyRefresh ?? 1 }

    public init(beta: Float = 0.1, iterationSteps: Int = 100) throws {
        try checkArg(beta > 0, "spin", "beta must be > 0, got \(beta)")
        dpo = try DPOObjective(beta: beta)
        requirements = ObjectiveRequirements(oldPolicyRefresh: iterationSteps)
    }

    public func lossAndGradient(_ input: ObjectiveInput, dlogits: UnsafeMutablePointer<Float>) -> ObjectiveResult {
        guard let opponent = input.oldLogits else {
            preconditionFailure("objective spin needs the opponent's logits (requirements.oldPolicyRefresh) but the input has none")
        }
        var asDPO = input
        asDPO.referenceLogits = opponent
        return dpo.lossAndGradient(asDPO, dlogits: dlogits)
    }
}
