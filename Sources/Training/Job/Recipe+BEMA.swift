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
    /// EMA weight exceeds 1 (an extrapolation, not an average) is refused rather than written as
    /// `OUT/bema/`, and so is a reference update that cannot act.
    func checkBEMA(_ objective: Objective) throws {
        let k = Recipe.declared
        let keys: [any AnyRecipeKey] = [k.bemaUpdateFreq, k.bemaEmaPower, k.bemaBiasPower, k.bemaLag, k.bemaUpdateAfter,
                                        k.bemaMultiplier, k.bemaMinEmaMultiplier, k.bemaUpdateRefModel]
        guard self.bema else {
            for key in keys + [k.bemaRefModelUpdateFreq, k.bemaRefModelUpdateAfter] where deliberateAny(key) && !switchedOff(key, by: k.bema) {
                throw RecipeError("\(named(key)) is a setting of bema (--bema), the bias-corrected average of the weights: without it no average is kept and \(key.name) has no effect")
            }
            return
        }
        let s = bemaSchedule, first = s.firstUpdate
        if s.beta(first) > 1 {
            throw RecipeError("\(named(k.bemaLag)) \(s.lag) with \(named(k.bemaMultiplier)) \(text(s.multiplier)): the EMA's weight β_t = (lag + multiplier·t)^−\(text(s.emaPower)) is \(text(s.beta(first))) at the first update (step \(first)), more than 1 — an extrapolation, not an average; make lag + multiplier·\(first) at least 1 (TRL's default lag is 10)")
        }
        try checkBEMAReference(objective)
        if self.numTrainEpochs == 0 { try checkBEMAInterval() }
    }

    /// bema_update_ref_model replaces the reference the objective reads (BEMAReferenceUpdate.swift).
    private func checkBEMAReference(_ objective: Objective) throws {
        let k = Recipe.declared
        guard self.bemaUpdateRefModel else {
            for key in [k.bemaRefModelUpdateFreq, k.bemaRefModelUpdateAfter] as [any AnyRecipeKey]
            where deliberateAny(key) && !switchedOff(key, by: k.bemaUpdateRefModel) {
                throw RecipeError("\(named(key)) sets when bema_update_ref_model (--bema-update-ref-model) replaces the reference model: without it the reference stays fixed and \(key.name) has no effect")
            }
            return
        }
        if !objective.requirements.referenceModel {
            throw RecipeError("\(named(k.bemaUpdateRefModel)) replaces the reference model the objective reads, and objective \(self.objective) reads none here (dpo, asft, iwsft, superhf, token-clean and forgetting with scores=online, grpo, rloo and uft with beta > 0 do)")
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
            throw RecipeError("\(freq)\(after) first moves the average at step \(bemaSchedule.firstUpdate), after the run's \(self.steps) steps: OUT/bema/ would be the initial weights; give a smaller interval (TRL's default is 400)")
        }
        // The first step t ≥ τ_ref with (t − τ_ref) a multiple of φ_ref, t ≥ 1.
        let after = self.bemaRefModelUpdateAfter, firstReference = after > 0 ? after : self.bemaRefModelUpdateFreq
        if self.bemaUpdateRefModel && firstReference > self.steps {
            let freq = deliberate(k.bemaRefModelUpdateFreq) ? "\(named(k.bemaRefModelUpdateFreq)) \(self.bemaRefModelUpdateFreq)" : "bema_ref_model_update_freq (default \(self.bemaRefModelUpdateFreq), --bema-ref-model-update-freq)"
            let given = after > 0 ? "\(named(k.bemaRefModelUpdateAfter)) \(after)" : freq
            throw RecipeError("\(given) first replaces the reference at step \(firstReference), after the run's \(self.steps) steps: the reference would never move; give a smaller one (TRL's default interval is 400)")
        }
    }

    private func deliberateAny(_ key: any AnyRecipeKey) -> Bool {
        switch key {
        case let key as RecipeKey<Int>: return deliberate(key)
        case let key as RecipeKey<Double>: return deliberate(key)
        case let key as RecipeKey<Bool>: return deliberate(key)
        default: preconditionFailure("checkBEMA: \(key.name)")
        }
    }

    private func text(_ x: Double) -> String { String(format: "%g", x) }
}
