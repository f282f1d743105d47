extension Recipe {
    /// a2po's regression target is r − V*(x), with V* estimated once, before the first step,
    /// from the reference's samples (stage 1, `OptimalValues`), and one answer per prompt, as
    /// TRL's A2POTrainer: what would move the reference after stage 1, or evaluate with more
    /// than one answer per prompt, is refused.
    func checkA2PO(_ objective: Objective) throws {
        guard objective is A2POObjective else { return }
        let k = Recipe.declared
        for key in [k.syncRefModel, k.bemaUpdateRefModel] where self[key] && !switchedOff(key, by: k.objective) {
            throw RecipeError("\(named(key)) moves the reference model, and objective a2po's V* is estimated from it once, before the first step (stage 1, as TRL's A2POTrainer, which has no such option): the regression target would mix two references; drop it")
        }
        // (−1, "as rollouts", is what a run's recipe.yaml writes: one answer here.)
        if isSet(k.evalRollouts.name) && self.evalRollouts > 1 {
            throw RecipeError("\(named(k.evalRollouts)) \(self.evalRollouts): objective a2po evaluates one answer per held-out prompt, as TRL's A2POTrainer (its V* estimates the rest); leave it unset, or give 1 (0: the held-out NLL)")
        }
    }

    /// TRL's A2POConfig names stage 1's and stage 2's temperatures beta1 and beta2, which are
    /// AdamW's moment decays here (TRL's adam_beta1/adam_beta2): a run that sets those keys under
    /// a2po is told which it set (the ranges overlap, so a mix-up would run silently).
    func a2poNote(_ objective: Objective) -> String? {
        guard objective is A2POObjective else { return nil }
        let k = Recipe.declared
        let given = [k.beta1, k.beta2].filter { deliberate($0) }.map(\.name)
        guard !given.isEmpty else { return nil }
        return "note: \(given.joined(separator: " and ")) set\(given.count == 1 ? "s" : "") AdamW's moment decay\(given.count == 1 ? "" : "s") (TRL's adam_beta1/adam_beta2); A2POConfig's beta1 and beta2 are --objective-arg beta1=… and beta2=…"
    }
}
