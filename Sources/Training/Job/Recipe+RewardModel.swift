import Foundation

extension Recipe {
    /// `--objective reward` trains a reward model (`SequenceScoreHead`), which has no LM head:
    /// it generates nothing and gives no log-probs. Keys that would make it do so are refused,
    /// as is LoRA (peft keeps a reward model's new head as `modules_to_save`).
    func checkRewardModel(_ objective: Objective) throws {
        guard objective.requirements.sequenceScores else { return }
        let k = Recipe.declared
        let why = "objective \(self.objective) trains a reward model, which scores whole sequences and generates nothing"
        if self.evalExamples > 0 && deliberate(k.evalExamples) && !switchedOff(k.evalExamples, by: k.objective) {
            throw RecipeError("\(named(k.evalExamples)) \(self.evalExamples): \(why); its evaluation is the loss, accuracy and margin on the held-out pairs (TRL's RewardTrainer)")
        }
        if deliberate(k.maxNewTokens) && !switchedOff(k.maxNewTokens, by: k.objective) {
            throw RecipeError("\(named(k.maxNewTokens)): \(why); it has no answers to generate")
        }
        if self.selfTrain != "none" { throw RecipeError("\(named(k.selfTrain)) \(self.selfTrain): \(why); self-training needs its answers") }
    }

    /// How pairs longer than max_length are fitted: a reward model's are dropped unless
    /// `truncation` is given (TRL's RewardTrainer filters them out; cut on the right, an answer
    /// would lose its end, where the reward is read).
    func pairTruncation(_ objective: Objective) -> Truncation {
        objective.requirements.sequenceScores && !deliberate(Recipe.declared.truncation) ? .drop : self.truncation
    }

    /// Held-out answers a run generates for exact match: none for a reward model.
    func generationExamples(_ objective: Objective) -> Int {
        objective.requirements.sequenceScores ? 0 : self.evalExamples
    }
}
