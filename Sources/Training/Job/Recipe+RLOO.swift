import Foundation

extension Recipe {
    /// rloo forms leave-one-out advantages (`LeaveOneOutAdvantages`; the `rollouts` key's range
    /// starts at 2, which TRL's RLOOConfig requires too): the keys that shape grpo's advantages
    /// have no part there (RLOOTrainer has neither; `normalize_advantages` is its own switch).
    func checkLeaveOneOut(_ objective: Objective) throws {
        guard objective is RLOOObjective else { return }
        let k = Recipe.declared
        if deliberate(k.scaleRewards) && !switchedOff(k.scaleRewards, by: k.objective) {
            throw RecipeError("\(named(k.scaleRewards)) scales grpo's group advantages; objective rloo forms leave-one-out advantages: standardise them with --objective-arg normalize_advantages=true (TRL's RLOOConfig)")
        }
        if deliberate(k.multiObjectiveAggregation) && !switchedOff(k.multiObjectiveAggregation, by: k.objective) {
            throw RecipeError("\(named(k.multiObjectiveAggregation)) combines reward functions into grpo's advantages; objective rloo takes the weighted sum Σ w·r, as TRL's RLOOTrainer: here it would have no effect")
        }
    }
}
