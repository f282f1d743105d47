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
        if isSet(k.evalRollouts.name) && ![0, 1].contains(self.evalRollouts) {
            throw RecipeError("\(named(k.evalRollouts)) \(self.evalRollouts): objective a2po evaluates one answer per held-out prompt, as TRL's A2POTrainer (its V* estimates the rest); leave it unset, or give 1 (0: the held-out NLL)")
        }
    }
}
