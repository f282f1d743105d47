import Foundation

extension Recipe {
    /// gkd distils a teacher, `--ref-model`, into the model on batches it makes itself
    /// (`DistillationProducer`): without a teacher there is nothing to distil (a copy of the
    /// initial weights would make every off-policy step's loss 0); a producer that replaces its
    /// batches (selection, self-training) would drop the student's samples; and the teacher is
    /// fixed, as TRL's GKDTrainer keeps it.
    func checkDistillation(_ objective: Objective) throws {
        guard let gkd = objective as? GKDObjective else { return }
        let k = Recipe.declared
        if self.refModel == nil {
            throw RecipeError("objective gkd distils a teacher into the model (TRL's GKDTrainer teacher_model): give the teacher with --ref-model DIR, a model that reads the same token ids")
        }
        if gkd.samples && self.selection != "none" {
            throw RecipeError("\(named(k.selection)) \(self.selection) chooses among the rows of --data, and objective gkd replaces their answers by sampled ones (lmbda above 0 or seq_kd): drop one of them, or give lmbda=0 without seq_kd")
        }
        if gkd.samples && self.selfTrain != "none" {
            throw RecipeError("\(named(k.selfTrain)) \(self.selfTrain) makes each step's batch from the model's own answers, and objective gkd samples its own (lmbda above 0 or seq_kd): drop one of them, or give lmbda=0 without seq_kd")
        }
        // TRL's GKDTrainer trains the answers only: its sampled steps have no prompt to train.
        for key in [k.completionOnlyLoss, k.assistantOnlyLoss] where !self[key] && !switchedOff(key, by: k.objective) {
            throw RecipeError("\(shown(key)): objective gkd trains the divergence on the answers only, as TRL's GKDTrainer masks the prompt (its steps on sampled answers have no prompt loss)")
        }
        // Learnability scores with --ref-model as a reference of the trained model's architecture.
        if self.selection == "learnability" {
            throw RecipeError("\(named(k.selection)) learnability scores the rows against --ref-model as a reference, and objective gkd reads it as its teacher: drop one of them")
        }
        if self.syncRefModel {
            throw RecipeError("\(named(k.syncRefModel)) moves a reference toward the trained weights; objective gkd's --ref-model is the teacher it distils, which stays fixed (TRL's GKDTrainer has no such sync)")
        }
    }
}
