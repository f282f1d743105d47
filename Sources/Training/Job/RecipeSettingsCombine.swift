import Foundation

extension Recipe {
    /// Settings that cannot run together, refused from the recipe alone — so `--dry-run`
    /// refuses them too (they were found only once the model and data had loaded, naming a
    /// flag where a recipe file had set the key) — each message naming the key's recipe line
    /// or its flag. The run's own setup keeps the same checks for callers that skip `validate`.
    func checkSettingsCombine(_ objective: Objective, rewards: [RewardFunction]) throws {
        let k = Recipe.declared
        if self.scoredData {
            if self.objective != "grpo" {
                throw RecipeError("\(named(k.scoredData)) trains objective grpo on the rows of --data as scored samples, not objective \(self.objective)")
            }
            if !self.rewards.isEmpty {
                throw RecipeError("\(named(k.rewards)): scored_data takes the rewards of --data's rows: drop --reward (rewards:)")
            }
        } else if objective.requirements.rollouts {
            if self.rewards.isEmpty {
                throw RecipeError("\(named(k.objective)) \(self.objective) samples rollouts and needs a reward: give --reward NAME[=WEIGHT] (or a rewards: list), NAME one of \(RewardFunction.names.joined(separator: ", "))")
            }
            if !rewards.contains(where: { $0.weight != 0 }) {
                throw RecipeError("\(named(k.rewards)): every reward weight is 0 (\(self.rewards.joined(separator: ", "))): every advantage would be 0 and nothing would train")
            }
        }
        if self.zero > 0 && self.optimizer != .adamw {
            throw RecipeError("\(named(k.zero)) \(self.zero): optimizer \(self.optimizer.rawValue) cannot shard its state (only adamw can); use --optimizer adamw or --zero 0")
        }
        if self.zero > 0 && self.l2Init != 0 {
            throw RecipeError("\(named(k.zero)) \(self.zero) with \(named(k.l2Init)): the penalty is added by the unsharded update, and ZeRO's ranks each update their own shard; use one or the other")
        }
        if self.loraRank > 0, let key = self.freeze != nil ? k.freeze : self.trainable != nil ? k.trainable : nil {
            throw RecipeError("\(named(key)) cannot be combined with \(named(k.loraRank)) (a LoRA run trains only its adapters)")
        }
    }
}
