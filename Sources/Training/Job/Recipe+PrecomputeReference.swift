extension Recipe {
    /// precompute_ref_log_probs scores the reference once, before the first step, on the
    /// data's answers (`PrecomputedReference`): an objective that reads the reference otherwise — or
    /// none — and what would move the reference later are refused, as TRL's DPOTrainer refuses
    /// `sync_ref_model` beside it.
    func checkPrecomputedReference(_ objective: Objective) throws {
        let k = Recipe.declared
        let noPass = RecipeError("\(named(k.precomputeRefBatchSize)) sizes the scoring pass of precompute_ref_log_probs (--precompute-ref-log-probs): without it there is none and \(k.precomputeRefBatchSize.name) has no effect")
        guard self.precomputeRefLogProbs else {
            if deliberate(k.precomputeRefBatchSize) && !switchedOff(k.precomputeRefBatchSize, by: k.precomputeRefLogProbs) { throw noPass }
            return
        }
        let r = objective.requirements
        if !r.precomputableReference {
            // A recipe file's key for dpo (or kto), under an --objective flag for another: not used (recipe.yaml
            // comments it, and the file's batch size with it; a batch size flag would do nothing).
            if switchedOff(k.precomputeRefLogProbs, by: k.objective) {
                if deliberate(k.precomputeRefBatchSize) && !switchedOff(k.precomputeRefBatchSize, by: k.objective) { throw noPass }
                return
            }
            let reads = r.rollouts ? "reads the reference on answers it samples during training"
                : r.unpaired ? "reads the reference on prompt–answer pairings drawn at each step (its KL estimate; --objective-arg kl_pairing=fixed pairs each row once, before the first step, as TRL's KTOTrainer)"
                : r.tokenLabels ? "scores its token labels with the reference itself"
                : r.oldPolicyRefresh != nil ? "reads a reference that moves with the policy (its opponent or old policy)"
                : !r.referenceModel ? "reads no reference model"
                : "reads more of the reference than its log-probs of the data's answers"
            throw RecipeError("\(named(k.precomputeRefLogProbs)) scores the reference's log-probs of the data's answers once, before the first step, and objective \(self.objective) \(reads); it applies to dpo and to kto with kl_pairing=fixed or loss_type=apo_zero_unpaired (TRL's DPOConfig and KTOConfig)")
        }
        for key in [k.syncRefModel, k.bemaUpdateRefModel] where self[key] {
            throw RecipeError("\(named(key)) moves the reference model, and \(named(k.precomputeRefLogProbs)) scores it once, before the first step, then releases it (TRL's DPOTrainer and KTOTrainer refuse a moving reference, sync_ref_model, with it); use one or the other")
        }
    }
}
