import Foundation

extension Recipe {
    /// The schedule `--bema` runs (BiasCorrectedEMA.swift), from its keys.
    public var bemaSchedule: BiasCorrectedEMA.Schedule {
        var s = BiasCorrectedEMA.Schedule()
        s.updateFreq = self.bemaUpdateFreq; s.updateAfter = self.bemaUpdateAfter; s.lag = self.bemaLag
        s.emaPower = self.bemaEmaPower; s.biasPower = self.bemaBiasPower; s.multiplier = self.bemaMultiplier; s.minEMAMultiplier = self.bemaMinEmaMultiplier
        return s
    }

    /// The bema_* keys act only with `bema` (the reference keys only with bema_update_ref_model);
    /// an average that would never move (its first update after the run's last step) or whose
    /// weights β_t or α_t exceed 1 (an extrapolation, not an average) is refused rather than written as
    /// `OUT/bema/`, and so is a reference update that cannot act.
    func checkBEMA(_ objective: Objective) throws {
        let k = Recipe.declared
        let keys: [any AnyRecipeKey] = [k.bemaUpdateFreq, k.bemaEmaPower, k.bemaBiasPower, k.bemaLag, k.bemaUpdateAfter,
                                        k.bemaMultiplier, k.bemaMinEmaMultiplier, k.bemaUpdateRefModel]
        guard self.bema else {
            for key in keys + [k.bemaRefModelUpdateFreq, k.bemaRefModelUpdateAfter] where key.deliberate(in: self) && !switchedOff(key, by: k.bema) {
                throw RecipeError("\(named(key)) is a setting of bema (--bema), the bias-corrected average of the weights: without it no average is kept and \(key.name) has no effect")
            }
            return
        }
        // lag + multiplier·t grows with t: at least 1 at the first update keeps β_t and α_t ≤ 1.
        let s = bemaSchedule, first = s.firstUpdate
        for (weight, value, power) in [("the EMA's weight β_t", s.beta(first), s.emaPower), ("the correction's weight α_t", s.alpha(first), s.biasPower)]
        where !(value <= 1) {
            throw RecipeError("\(named(k.bemaLag)) \(s.lag) with \(named(k.bemaMultiplier)) \(s.multiplier.shortText): \(weight) = (lag + multiplier·t)^−\(power.shortText) is \(value.shortText) at the first update (step \(first)), more than 1 — an extrapolation, not an average; make lag + multiplier·\(first) at least 1 (TRL's default lag is 10)")
        }
        try checkBEMAReference(objective)
        if self.numTrainEpochs == 0 { try checkBEMAInterval() }
    }

    /// bema_update_ref_model replaces the reference the objective reads (BEMAReferenceUpdate.swift).
    private func checkBEMAReference(_ objective: Objective) throws {
        let k = Recipe.declared
        guard self.bemaUpdateRefModel else {
            for key in [k.bemaRefModelUpdateFreq, k.bemaRefModelUpdateAfter] as [any AnyRecipeKey]
            where key.deliberate(in: self) && !switchedOff(key, by: k.bemaUpdateRefModel) {
                throw RecipeError("\(named(key)) sets when bema_update_ref_model (--bema-update-ref-model) replaces the reference model: without it the reference stays fixed and \(key.name) has no effect")
            }
            return
        }
        if !objective.requirements.referenceModel {
            throw RecipeError("\(named(k.bemaUpdateRefModel)) replaces the reference model the objective reads, and objective \(self.objective) reads none here (dpo, kto, asft, iwsft, superhf, token-clean and forgetting with scores=online; grpo, rloo, gmpo, online-dpo and uft with beta > 0 do)")
        }
        if objective is GKDObjective {
            throw RecipeError("\(named(k.bemaUpdateRefModel)) replaces a reference by the trained weights' average; objective gkd's --ref-model is the teacher it distils, which stays fixed")
        }
        if self.syncRefModel {
            throw RecipeError("\(named(k.bemaUpdateRefModel)) with \(named(k.syncRefModel)): both move the reference model; use one or the other")
        }
        if self.loraRank > 0 {
            throw RecipeError("\(named(k.bemaUpdateRefModel)) with lora_rank \(self.loraRank): a LoRA run's reference is its base with zero adapters, and the averaged adapters are not weights a reference can take (TRL then writes the average into the policy's own base); use one or the other")
        }
    }

    /// A first update after the last step would leave `OUT/bema/` at the initial weights, or
    /// the reference never replaced.
    func checkBEMAInterval() throws {
        let k = Recipe.declared
        guard self.bema else { return }
        if bemaSchedule.firstUpdate > self.steps {
            let freq = deliberate(k.bemaUpdateFreq) ? "\(named(k.bemaUpdateFreq)) \(self.bemaUpdateFreq)" : "bema_update_freq (default \(self.bemaUpdateFreq), --bema-update-freq)"
            let after = self.bemaUpdateAfter > 0 ? " after \(named(k.bemaUpdateAfter)) \(self.bemaUpdateAfter)" : ""
            let advice = self.bemaUpdateAfter > 0 ? "a smaller bema_update_after or interval" : "a smaller interval (TRL's default is 400)"
            throw RecipeError("\(freq)\(after) first moves the average at step \(bemaSchedule.firstUpdate), after the run's \(self.steps) steps: OUT/bema/ would be the initial weights; give \(advice)")
        }
        // The first step t ≥ τ_ref with (t − τ_ref) a multiple of φ_ref, t ≥ 1; one at the last
        // step would move the reference after the last training step, so no step would read it.
        let after = self.bemaRefModelUpdateAfter, firstReference = after > 0 ? after : self.bemaRefModelUpdateFreq
        if self.bemaUpdateRefModel && firstReference >= self.steps {
            let freq = deliberate(k.bemaRefModelUpdateFreq) ? "\(named(k.bemaRefModelUpdateFreq)) \(self.bemaRefModelUpdateFreq)" : "bema_ref_model_update_freq (default \(self.bemaRefModelUpdateFreq), --bema-ref-model-update-freq)"
            let given = after > 0 ? "\(named(k.bemaRefModelUpdateAfter)) \(after)" : freq
            let advice = after > 0 ? "a smaller bema_ref_model_update_after" : "a smaller interval (TRL's default is 400)"
            throw RecipeError("\(given) first replaces the reference at step \(firstReference), \(firstReference == self.steps ? "the run's last step" : "after the run's \(self.steps) steps"): no training step would read the replaced reference; give \(advice)")
        }
    }
}
