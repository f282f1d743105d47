import Foundation
import TensorCore

/// ReLIFT, "Learning What Reinforcement Learning Can't: Interleaved Online Fine-Tuning for
/// Hardest Questions", Ma et al., arXiv 2506.07527, §3 (Algorithm 1); public code
/// `TheRoadQaQ/ReLIFT` (`relift/trainer.py`, `actor.py::sft_update_policy`, `compute_sft_loss`).
///
/// RL steps train GRPO on the rollouts; prompts none of whose G rollouts succeed go to a
/// buffer of their demonstrations (`ReLIFTProducer`), and once it holds `sft_data_size`
/// of them an SFT step on those demonstrations is interleaved (after the RL step that
/// filled it, as ReLIFT's RL update precedes its SFT update). A step is one or the other:
///
///   RL step   L = grpo's loss of the rollouts (`GRPOObjective`, this file's arguments),
///   SFT step  L = Σ_{demonstration tokens} −log p(y_t) / N_tokens   (ReLIFT's token-mean NLL),
///
/// N_tokens the loss tokens of the whole step batch (all ranks), so neither depends on the
/// rank count. Detached on RL steps: A, the behaviour log-probs; nothing on SFT steps.
/// Defaults from the paper's script (`examples/math-7b/train.sh`): `loss_type=dr_grpo`
/// (its `loss_remove_token_mean`: Σℓ / max_response_length), with `scale_rewards: none` in
/// the recipe (`grpo_use_std=False`); ReLIFT removes the PPO clip (`loss_remove_clip`), which
/// changes nothing at one step per generation (the ratio is 1 at its first use) — the clip
/// here is grpo's (`epsilon`, `epsilon_high`) for reused generations. `sft_data_size` = the
/// prompts per RL step (the paper: 128 of 128), 0 meaning that.
/// Differences from ReLIFT: one optimizer (and its moments) serves both kinds of step,
/// ReLIFT keeps a second one for SFT at the same learning rate; its SFT entropy bonus
/// (0.001) and RL entropy bonus are not applied; the SFT token mean is over the whole step,
/// ReLIFT's over each micro-batch of 4 averaged.
public final class ReLIFTObjective: Objective, DetachedEvaluable {
    public let name = "relift"
    public let requirements: ObjectiveRequirements
    /// The RL steps' loss.
    public let rl: GRPOObjective
    let sft: NLLObjective
    /// Demonstrations per SFT step; nil: the prompts per RL step (batch_size / rollouts).
    public let sftDataSize: Int?

    public init(epsilon: Float = 0.2, epsilonHigh: Float? = nil, lossType: String = "dr_grpo", sftDataSize: Int = 0) throws {
        try checkArg(sftDataSize >= 0, "relift", "sft_data_size must be >= 0 (0: the prompts per step), got \(sftDataSize)")
        // Its RL step is the paper's GRPO (Dr.GRPO by default), not MiniMax-M1's CISPO.
        let types = [GRPOObjective.LossType.grpo, .bnpo, .drGRPO, .dapo].map(\.rawValue)   // PPO-clipped, token level
        try checkArg(types.contains(lossType), "relift", "loss_type must be one of \(types.joined(separator: ", ")) (got \(RecipeError.quote(lossType)))")
        do {
            rl = try GRPOObjective(epsilon: epsilon, epsilonHigh: epsilonHigh, beta: 0, lossType: lossType)
        } catch let e as ObjectiveError {
            throw ObjectiveError(e.description.replacingOccurrences(of: "objective grpo", with: "objective relift"))
        }
        sft = try NLLObjective()
        self.sftDataSize = sftDataSize > 0 ? sftDataSize : nil
        // Behaviour log-probs are read when present (rollouts); SFT steps have none.
        var r = ObjectiveRequirements()
        r.rollouts = true
        requirements = r
    }

    /// Whether the step is an SFT step: its sequences are demonstrations (the producer never
    /// mixes them with rollouts). Every rank holds the whole step batch, so all agree.
    static func isSFTStep(_ sequences: [StepSequence]) -> Bool {
        guard let first = sequences.first, first.origin == .demonstration else { return false }
        precondition(sequences.allSatisfy { $0.origin == .demonstration }, "objective relift: a step mixes demonstrations and rollouts")
        return true
    }

    /// The RL step is grpo's, its first-step π_old read at `detached` (the logits themselves in
    /// training; the unperturbed ones in the finite-difference checks).
    public func evaluate(_ input: ObjectiveInput, detached: UnsafePointer<Float>, dlogits: UnsafeMutablePointer<Float>?) -> ObjectiveResult {
        guard Self.isSFTStep(input.sequences) else { return rl.evaluate(input, detached: detached, dlogits: dlogits) }
        guard let dlogits else {   // the loss alone: a scratch gradient
            var scratch = [Float](repeating: 0, count: input.rows * input.vocab)
            return scratch.withUnsafeMutableBufferPointer { evaluate(input, detached: detached, dlogits: $0.baseAddress!) }
        }
        // `entropy` stays the rollouts' (grpo's): nll's, over the demonstrations, would join
        // the same series on SFT steps.
        var r = sft.lossAndGradient(input, dlogits: dlogits)
        r.diagnostics["entropy"] = nil
        r.diagnosticCounts["entropy"] = nil
        return r
    }
}
