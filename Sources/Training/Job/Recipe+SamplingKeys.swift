import Foundation

extension Recipe {
    /// The rollout keys are read by the objectives that sample (grpo, chord, srft, uft,
    /// prefix-rft, relift: `requirements.rollouts`) — not with `scored_data`, whose samples are
    /// `--data`'s rows, which reads only `max_completion_length` and `scale_rewards` of them
    /// (its own check refuses `multi_objective_aggregation`);
    /// `rewards` and `reward_args` also by superhf's self-training; gkd, when it samples, reads
    /// the four sampling keys (`DistillationProducer`). Elsewhere (`--rollouts 8`
    /// with nll) they would be ignored, so they are refused, at their default value too.
    func checkRolloutKeysNeedASampler(_ objective: Objective) throws {
        let samples = objective.requirements.rollouts && !self.scoredData
        guard !samples else { return }
        let k = Recipe.declared
        // gkd samples answers without rewards, groups or generations: it reads these four.
        let gkd = objective as? GKDObjective
        let sampling = [k.rolloutTemperature.name, k.rolloutTopP.name, k.rolloutTopK.name, k.maxCompletionLength.name]
        var unread: [(any AnyRecipeKey, Bool)] = [
            (k.prompts, self.prompts != nil), (k.rollouts, deliberate(k.rollouts)),
            (k.rolloutTemperature, deliberate(k.rolloutTemperature)), (k.rolloutTopP, deliberate(k.rolloutTopP)),
            (k.rolloutTopK, deliberate(k.rolloutTopK)), (k.stepsPerGeneration, deliberate(k.stepsPerGeneration)),
            (k.numIterations, deliberate(k.numIterations)), (k.maskTruncatedCompletions, deliberate(k.maskTruncatedCompletions))]
        if !self.scoredData {
            unread += [(k.maxCompletionLength, deliberate(k.maxCompletionLength)), (k.scaleRewards, deliberate(k.scaleRewards)),
                       (k.multiObjectiveAggregation, deliberate(k.multiObjectiveAggregation))]
        }
        // SuperHF ranks its samples by the rewards; the other methods score with
        // --self-train-scorer, which reward_args configure (`--reward-arg regex.pattern=…`).
        if self.selfTrain != "superhf" && !self.scoredData { unread += [(k.rewards, !self.rewards.isEmpty)] }
        if self.selfTrain == "none" && !self.scoredData { unread += [(k.rewardArgs, !self.rewardArgs.isEmpty)] }
        if gkd?.samples == true { unread.removeAll { sampling.contains($0.0.name) } }
        if let (key, _) = unread.first(where: { $0.1 && !switchedOff($0.0, by: k.objective) && !switchedOff($0.0, by: k.selfTrain) }) {
            if gkd != nil && sampling.contains(key.name) {
                throw RecipeError("\(named(key)) acts on gkd's sampled answers, and with lmbda 0 and seq_kd false every step trains on --data's completions: it would have no effect")
            }
            if gkd != nil {
                throw RecipeError("\(named(key)) is read by the objectives that sample rollouts (grpo, rloo, gmpo, a2po, online-dpo, chord, srft, uft, prefix-rft, relift); objective gkd samples with rollout_temperature, rollout_top_p, rollout_top_k and max_completion_length only: it would have no effect")
            }
            if self.scoredData {
                throw RecipeError("\(named(key)) acts on sampling, and scored_data (--scored-data) trains on --data's samples without sampling: it would have no effect")
            }
            let alsoSelfTraining = key.name == k.rewards.name ? ", and by self-training superhf (--self-train superhf)"
                : key.name == k.rewardArgs.name ? ", and by self-training (--self-train, whose --self-train-scorer it configures)" : ""
            throw RecipeError("\(named(key)) is read by the objectives that sample rollouts (grpo, rloo, gmpo, a2po, online-dpo, chord, srft, uft, prefix-rft, relift)\(alsoSelfTraining): with objective \(self.objective)\(self.selfTrain == "none" ? "" : " and --self-train \(self.selfTrain)") it would have no effect")
        }
    }
}
