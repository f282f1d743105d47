import Foundation

extension Recipe {
    /// Settings that cannot run together, refused from the recipe alone — so `--dry-run`
    /// refuses them too (they were found only once the model and data had loaded, naming a
    /// flag where a recipe file had set the key) — each message naming the key's recipe line
    /// or its flag. The parts that build what a key configures (the LoRA trainable set, the
    /// ZeRO optimizer, the scored-data and rollout producers) call the same checks, so a caller
    /// that skips `validate` meets the same refusals.
    func checkSettingsCombine(_ objective: Objective, rewards: [RewardFunction]) throws {
        if self.scoredData { try checkScoredData() }
        else if objective.requirements.rollouts {
            try checkRewards(rewards, objective: objective); try checkRewardAggregation(); try checkRolloutsPerPrompt(objective)
            try checkLeaveOneOut(objective)
            _ = try RolloutSettings(recipe: self, objective: objective)   // batch_size a multiple of rollouts, under --dry-run too
        }
        try checkRewardModel(objective)
        try checkZeroCanShard()
        try checkLoRATrainsOnlyAdapters()
        try checkA2PO(objective)   // first: its own reason to refuse a moving reference
        try checkPrecomputedReference(objective)   // its clash with a moving reference before their intervals
        try checkBEMA(objective)   // first: its clash with sync_ref_model before sync's own interval
        try checkReferenceSync(objective)
        if let why = NamedFiles.clash(self.evalData.names) { throw RecipeError("\(named(Recipe.declared.evalData)): \(why)") }
    }

    /// An objective built for G rollouts per prompt (online-dpo's pair: 2, a2po's one answer)
    /// takes `rollouts` unset or at G; it reads each answer's raw weighted reward, so the keys
    /// that shape group advantages would do nothing there.
    func checkRolloutsPerPrompt(_ objective: Objective) throws {
        let k = Recipe.declared
        guard let g = objective.requirements.rolloutsPerPrompt else { return }   // a group's G ≥ 2: RolloutSettings
        let pair = !(objective is A2POObjective)   // online-dpo's answers are ranked into a pair
        let trains = pair ? "samples \(g) answers per prompt and trains them as a pair (TRL's OnlineDPOTrainer)"
            : "samples one answer per prompt and regresses it onto r − V*(x) (TRL's A2POTrainer)"
        if isSet(k.rollouts.name) && self.rollouts != g {
            throw RecipeError("\(named(k.rollouts)) \(self.rollouts): objective \(self.objective) \(trains); leave it unset or give \(g)")
        }
        // Neither TRL trainer masks: a masked answer's log-ratio would be 0 — online-dpo's pair
        // would train the other answer alone, a2po's regression would pull nothing toward its target.
        if self.maskTruncatedCompletions && !switchedOff(k.maskTruncatedCompletions, by: k.objective) {
            throw RecipeError(pair ? "\(named(k.maskTruncatedCompletions)) masks a truncated answer's tokens; objective \(self.objective) trains each answer against its pair's other (a masked one would leave the pair one-sided): penalise them with --objective-arg missing_eos_penalty=… instead"
                              : "\(named(k.maskTruncatedCompletions)) masks a truncated answer's tokens; objective \(self.objective) regresses every answer's log-ratio onto its advantage, as TRL's A2POTrainer (a masked one would stay at 0 whatever its target)")
        }
        let reads = pair ? "ranks each pair by its raw score (Σ w·r) and reads no advantage" : "regresses onto r − V*(x), the weighted reward Σ w·r less the prompt's optimal value, not a normalised advantage"
        if deliberate(k.scaleRewards) && !switchedOff(k.scaleRewards, by: k.objective) {
            throw RecipeError("\(named(k.scaleRewards)) normalises advantages; objective \(self.objective) \(reads): here it would have no effect")
        }
        if deliberate(k.multiObjectiveAggregation) && !switchedOff(k.multiObjectiveAggregation, by: k.objective) {
            throw RecipeError("\(named(k.multiObjectiveAggregation)) combines the reward functions into advantages; objective \(self.objective) reads the weighted sum Σ w·r, as TRL's \(pair ? "OnlineDPOTrainer" : "A2POTrainer"): here it would have no effect")
        }
    }

    /// scored_data trains grpo on --data's rows, with their rewards.
    func checkScoredData() throws {
        let k = Recipe.declared
        if self.objective != "grpo" {
            throw RecipeError("\(named(k.scoredData)) trains objective grpo on the rows of --data as scored samples, not objective \(self.objective)")
        }
        if !self.rewards.isEmpty {
            throw RecipeError("\(named(k.rewards)): scored_data takes the rewards of --data's rows: drop --reward (rewards:)")
        }
        // A scored row has one reward and no reward functions to normalise apart.
        if deliberate(k.multiObjectiveAggregation) && !switchedOff(k.multiObjectiveAggregation, by: k.scoredData) {
            throw RecipeError("\(named(k.multiObjectiveAggregation)) \(self.multiObjectiveAggregation.rawValue) combines the rewards of several reward functions; scored_data's rows carry one reward each and no reward function: it would have no effect")
        }
        if self.data == RunSetup.builtinData {   // (it read as "builtin:tasks: no such file")
            throw RecipeError("\(named(k.scoredData)) trains on scored samples: give --data FILE, a JSONL of rows with a reward or advantage (the built-in tasks have none)")
        }
    }

    /// A sampling objective needs a reward function of non-zero weight (`functions`: the
    /// recipe's rewards, built) — or, for online-dpo, a missing_eos_penalty that ranks its pairs.
    func checkRewards(_ functions: [RewardFunction], objective: Objective) throws {
        let ranksByPenalty = ((objective as? OnlineDPOObjective)?.missingEOSPenalty ?? 0) > 0
        let k = Recipe.declared
        if self.rewards.isEmpty {
            throw RecipeError("\(named(k.objective)) \(self.objective) samples rollouts and needs a reward: give --reward NAME[=WEIGHT] (or a rewards: list), NAME one of \(RewardFunction.names.joined(separator: ", "))")
        }
        if !functions.contains(where: { $0.weight != 0 }) && !ranksByPenalty {
            throw RecipeError("\(named(k.rewards)): every reward weight is 0 (\(self.rewards.joined(separator: ", "))): every advantage would be 0 and nothing would train")
        }
    }

    /// normalize_then_sum scales each function by its group's std and the sum by the batch's:
    /// `scale_rewards`, which TRL's GRPOTrainer ignores there, would do nothing, so given it is
    /// refused (unless a flag chose normalize_then_sum over a recipe file that set scale_rewards).
    func checkRewardAggregation() throws {
        let k = Recipe.declared
        guard self.multiObjectiveAggregation == .normalizeThenSum, deliberate(k.scaleRewards),
              !switchedOff(k.scaleRewards, by: k.multiObjectiveAggregation) else { return }
        throw RecipeError("\(named(k.scaleRewards)) \(self.scaleRewards.rawValue) has no effect with \(named(k.multiObjectiveAggregation)) normalize_then_sum, which divides each reward function by its group's std and their sum by the generation's (TRL ignores scale_rewards there): drop one of them")
    }

    /// ZeRO shards AdamW's moments, and each rank updates only its shard.
    func checkZeroCanShard() throws {
        let k = Recipe.declared
        guard self.zero > 0 else { return }
        if self.optimizer != .adamw {
            throw RecipeError("\(named(k.zero)) \(self.zero): optimizer \(self.optimizer.rawValue) cannot shard its state (only adamw can); use --optimizer adamw or --zero 0")
        }
        if self.l2Init != 0 {
            throw RecipeError("\(named(k.zero)) \(self.zero) with \(named(k.l2Init)): the penalty is added by the unsharded update, and ZeRO's ranks each update their own shard; use one or the other")
        }
    }

    /// `--freeze` / `--trainable` choose among full weights; a LoRA run trains its adapters.
    func checkLoRATrainsOnlyAdapters() throws {
        let k = Recipe.declared
        if self.loraRank > 0, let key = self.freeze != nil ? k.freeze : self.trainable != nil ? k.trainable : nil {
            throw RecipeError("\(named(key)) cannot be combined with \(named(k.loraRank)) (a LoRA run trains only its adapters)")
        }
    }

    /// completion_only_loss / assistant_only_loss set which tokens of an SFT row train. Preference
    /// pairs score their answers only (the switches would do nothing); methods that sample or
    /// make rows read an answer's end from the mask (the stop token, a revealed prefix), and
    /// scored samples are rollouts, trained on their completions as GRPO's are — so they are refused.
    func checkLossScope(_ objective: Objective) throws {
        let k = Recipe.declared
        let why = objective.requirements.pairs ? "\(named(k.objective)) \(self.objective) trains on preference pairs and scores their answers only"
            : objective.requirements.unpaired ? "\(named(k.objective)) \(self.objective) scores the answers of labelled rows only, as TRL's KTOTrainer"
            : objective.requirements.rollouts ? "\(named(k.objective)) \(self.objective) trains sampled answers, which end where the answer's tokens end"
            : self.objective == "spin" ? "\(named(k.objective)) spin trains the model's answers against the data's"
            : self.selfTrain != "none" ? "self-training (\(named(k.selfTrain)) \(self.selfTrain)) trains answers it makes, which end where the answer's tokens end" : nil
        guard let why else { return }
        for key in [k.completionOnlyLoss, k.assistantOnlyLoss] where deliberate(key) && !switchedOff(key, by: k.objective) {
            throw RecipeError("\(shown(key)) sets which tokens of an SFT row are trained; \(why): give it only to SFT runs")
        }
    }

    /// A true-or-false key as the user gave it: `recipe.yaml:4: packing false`, or the flag
    /// (`--no-packing` for false).
    public func shown(_ key: RecipeKey<Bool>) -> String {
        origins[key.name] != nil ? "\(named(key)) \(self[key])" : self[key] ? "--" + key.flag : "--no-" + key.flag
    }

    /// sync_ref_model moves the reference the objective reads (ReferenceSync.swift); its two
    /// settings act only with it, and an interval longer than the run would never move it.
    func checkReferenceSync(_ objective: Objective) throws {
        let k = Recipe.declared
        guard self.syncRefModel else {
            // Chosen (a flag, or a recipe file's value away from the default), as other keys that
            // would do nothing: a written recipe.yaml lists every key at its value.
            for key in [k.refModelMixupAlpha, k.refModelSyncSteps] as [any AnyRecipeKey] where key.deliberate(in: self) && !switchedOff(key, by: k.syncRefModel) {
                throw RecipeError("\(named(key)) sets how sync_ref_model (--sync-ref-model) moves the reference model: without it the reference stays fixed and \(key.name) has no effect")
            }
            return
        }
        if !objective.requirements.referenceModel {
            throw RecipeError("\(named(k.syncRefModel)) moves the reference model the objective reads, and objective \(self.objective) reads none here (dpo, kto, asft, iwsft, superhf, token-clean and forgetting with scores=online; grpo, rloo, gmpo, online-dpo and uft with beta > 0 do)")
        }
        if self.loraRank > 0 {
            throw RecipeError("\(named(k.syncRefModel)) with lora_rank \(self.loraRank): a LoRA run's reference is its base with zero adapters, and mixing the adapters' factors is not mixing the weights they add (TRL refuses the pair too); use one or the other")
        }
        // Under num_train_epochs the steps are known once the rows are counted (TrainEpochs.apply).
        if self.numTrainEpochs == 0 { try checkReferenceSyncInterval() }
    }

    /// An interval longer than the run would never move the reference.
    func checkReferenceSyncInterval() throws {
        let k = Recipe.declared
        guard self.syncRefModel && self.refModelSyncSteps > self.steps else { return }
        let given = deliberate(k.refModelSyncSteps) ? "\(named(k.refModelSyncSteps)) \(self.refModelSyncSteps)" : "ref_model_sync_steps (default \(self.refModelSyncSteps), --ref-model-sync-steps)"
        throw RecipeError("\(given) is more than the run's \(self.steps) steps: the reference would never move; give a smaller interval (TRL's default is 512)")
    }
}
