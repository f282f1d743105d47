import Foundation
import TensorCore

/// Online DPO, Guo et al., arXiv:2402.04792, §3 (Algorithm 1), as TRL's `OnlineDPOTrainer`
/// (trl.experimental, 1.16) trains: each step's prompts are answered twice by the current
/// policy (`--rollouts 2`, the rollout producer), the two answers scored by the `--reward`
/// functions and ranked (Rollouts/RankedPairs.swift: Σ w·r less `missing_eos_penalty` for an
/// answer that did not stop; the first on a tie), and each pair trained with dpo's loss against
/// the frozen reference (DPOObjective): `loss_type` sigmoid −log σ(β(c − r)), or ipo
/// (c − r − 1/(2β))² on the log-ratio sums — TRL's online ipo is not length-averaged, unlike
/// its DPOTrainer's. The log-probs come from the raw logits, as TRL's `_forward` takes them
/// (not divided by the rollout temperature, as grpo's are). Arguments, TRL's names and
/// defaults: `beta` 0.1, `loss_type` sigmoid, `missing_eos_penalty` unset (≥ 0).
/// Diagnostics, TRL's names: dpo's `rewards/*`, `logps/*` (and its token figures);
/// `objective/kl` (the mean over answers of Σ_t log π_θ − log π_ref), `objective/non_score_reward`
/// (−β times it), `objective/rlhf_reward` (score + non_score_reward), `objective/entropy` (the
/// mean of −Σ_t log π_θ), `beta`; the producer logs `objective/scores`, `objective/scores_margin`
/// and `val/contain_eos_token` beside grpo's rollout figures.
public final class OnlineDPOObjective: DetachedEvaluable {
    public let name = "online-dpo"
    public let requirements: ObjectiveRequirements
    let dpo: DPOObjective
    public let missingEOSPenalty: Double?

    public init(beta: Float = 0.1, lossType: String = "sigmoid", missingEOSPenalty: Float? = nil) throws {
        guard let type = DPOLoss(rawValue: lossType), [.sigmoid, .ipo].contains(type) else {
            throw ObjectiveError("objective online-dpo: loss_type must be sigmoid or ipo, as TRL's OnlineDPOTrainer (got \(RecipeError.quote(lossType)))")
        }
        // Checked here as well: DPOObjective's own check names objective dpo.
        try checkArg(beta > 0, "online-dpo", "beta must be > 0, got \(beta)")
        if let p = missingEOSPenalty { try checkArg(p >= 0, "online-dpo", "missing_eos_penalty must be ≥ 0 (it is subtracted from an answer that did not stop), got \(p)") }
        dpo = try DPOObjective(beta: beta, lossTypes: [type])
        dpo.lengthNormalised = false; dpo.onlineFigures = true
        self.missingEOSPenalty = missingEOSPenalty.map(Double.init)
        var r = ObjectiveRequirements(referenceModel: true)
        r.rollouts = true; r.rolloutsPerPrompt = 2
        requirements = r
    }

    public func evaluate(_ input: ObjectiveInput, detached: UnsafePointer<Float>, dlogits: UnsafeMutablePointer<Float>?) -> ObjectiveResult {
        dpo.evaluate(input, detached: detached, dlogits: dlogits)
    }
}
