import Foundation
import Models

extension Recipe {
    /// LoRA's dropout and NEFTune's embedding noise change the training forward only. Where
    /// the objective divides by another forward of the same policy — the sampler's log-probs
    /// (rollouts, on a reused generation's later steps: a first step divides by the noised
    /// forward itself, detached), the old-policy or opponent snapshot (psft, spin), the reference
    /// at step 1 (dpo) — the noise alone moves the ratio from 1 (when a first step still divided
    /// by the sampler's log-probs, before 2026-12-07, GRPO clipped 16 % of tokens at dropout 0.9). TRL disables dropout for these (`disable_dropout`); here both are
    /// refused. Scored data has no sampler log-probs (its ratio is 1 by construction); srft's
    /// terms are log p and p, with no ratio to the sampler. NEFTune is refused beside any
    /// reference too (iwsft's weight, asft's and superhf's KL, online token scores): the
    /// reference is the initial weights, so at step 1 those compare the noised forward with
    /// the same weights unnoised (α 5 put iwsft's step-1 weight at 0.97, asft's KL at 0.01) —
    /// but not beside gkd's teacher, another model.
    /// LoRA's dropout changes nothing there at step 1 (B = 0), and token-clean's and
    /// forgetting's online scores keep it (LoRADropoutStatisticsTests).
    func checkTrainingNoiseKeepsRatios(_ objective: Objective) throws {
        let k = Recipe.declared, r = objective.requirements
        let samplerRatio = (r.behaviourLogProbs || r.rollouts) && !self.scoredData && !(objective is SRFTObjective)
        let ratio = samplerRatio || r.oldPolicyRefresh != nil || ((r.pairs || r.unpaired) && r.referenceModel)   // cpo, orpo: no reference
        // online-dpo samples, but its ratio is to the reference (no sampler log-probs are read).
        let against = samplerRatio && r.rolloutsPerPrompt == nil ? "the sampler's" : r.oldPolicyRefresh != nil ? "its snapshot's" : "the reference's"
        let why = "so their ratio would not be 1 where the objective needs it"
        // lora_dropout: not for a resumed run, whose checkpoint was accepted before this refusal.
        if ratio && !resumesACheckpoint && self.loraRank > 0 && self.loraDropout > 0 {
            throw RecipeError("\(named(k.loraDropout)) \(self.loraDropout) with objective \(self.objective): the training forward would drop adapter inputs that \(against) log-probs did not, \(why) (TRL disables dropout for this); use lora_dropout 0")
        }
        // gkd's reference is a teacher, another model: noise on the student's forward is NEFTune's
        // own use (TRL's GKDTrainer, an SFTTrainer, takes neftune_noise_alpha).
        if (ratio || r.referenceModel && !(objective is GKDObjective)) && self.neftuneNoiseAlpha > 0 {
            throw RecipeError("\(named(k.neftuneNoiseAlpha)) \(self.neftuneNoiseAlpha) with objective \(self.objective): the training forward would add noise to the embeddings that \(against) log-probs did not see, \(why)")
        }
    }
}
