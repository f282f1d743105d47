import Foundation

extension Recipe {
    /// kto trains labelled rows with the mismatched pairs of its KL term (`UnpairedProducer`):
    /// a selector or self-training would replace those batches; one row per step leaves no other
    /// row's answer to mismatch under kl_pairing=step (TRL's KTOTrainer refuses a batch of 1: its
    /// KL term would equal the row's own reward); and a prompt cut from the left would start the pairs it lends to.
    /// (The loss-scope switches are refused in `checkLossScope`, LoRA dropout in
    /// `checkTrainingNoiseKeepsRatios`.)
    func checkUnpaired(_ objective: Objective) throws {
        guard let kto = objective as? KTOObjective else { return }
        let k = Recipe.declared
        if self.selection != "none" {
            throw RecipeError("\(named(k.selection)) \(self.selection) chooses single sequences; objective kto trains on labelled rows with its own batches (the mismatched pairs of its KL term): drop --selection")
        }
        if self.selfTrain != "none" {
            throw RecipeError("\(named(k.selfTrain)) \(self.selfTrain) makes each step's batch from the model's own answers; objective kto trains on labelled rows: drop one of them")
        }
        // TRL's KTOTrainer cuts a sequence's end (keep_start); a prompt cut to fit its own answer
        // would also start each mismatched pair it lends to, sometimes with no prompt left.
        if self.truncation == .left {
            throw RecipeError("\(named(k.truncation)) left cuts each row's prompt to fit its answer; objective kto keeps every row's start, as TRL's KTOTrainer (its mismatched pairs lend one row's prompt to another row's answer): use right or drop")
        }
        // Under kl_pairing=fixed every row has its pair from the whole set, whatever its step holds.
        if kto.estimatesKL && kto.klPairing == .step && self.batchSize < 2 {
            throw RecipeError("\(named(k.batchSize)) 1: objective kto estimates its KL term from each row's prompt with another row's answer, and a step of one row has no other (TRL's KTOTrainer refuses a batch of 1); give 2 or more, objective_args kl_pairing=fixed (each row paired once, in file order), or loss_type=apo_zero_unpaired, which has no KL term")
        }
    }

    /// The KL term pairs a row's prompt with another prompt's answer: training rows that all share
    /// one prompt have none (nil when they do not, or without the KL term).
    func unpairedDataProblem(_ objective: Objective, train: [Example]) -> String? {
        guard let kto = objective as? KTOObjective, kto.estimatesKL, let first = train.first else { return nil }
        let prompt = Dataset.context(of: first)
        guard train.allSatisfy({ Dataset.context(of: $0) == prompt }) else { return nil }
        return "\(self.data): every training row has the same prompt (\(first.source)), and objective kto's KL term pairs a row's prompt with another prompt's answer: give rows of two prompts or more, or objective_args loss_type=apo_zero_unpaired, which has no KL term"
    }

    /// Under num_train_epochs an epoch's last step holds what is left of the rows: one row alone
    /// has no other row's answer to rotate in, so no mismatched pair and a KL term of 0 (nil when
    /// that cannot happen; kl_pairing=fixed pairs each row from the whole set).
    func unpairedEpochProblem(_ objective: Objective, rows: Int) -> String? {
        guard let kto = objective as? KTOObjective, kto.estimatesKL, kto.klPairing == .step, self.numTrainEpochs > 0,
              rows % self.batchSize == 1 else { return nil }
        let k = Recipe.declared
        return "\(named(k.numTrainEpochs)): \(rows) training rows in steps of \(self.batchSize) leave one row for the last step of each epoch, and objective kto's KL term needs two (a row's prompt with another row's answer): give a \(named(k.batchSize)) that leaves none or two or more, --steps, objective_args kl_pairing=fixed (each row paired once, in file order), or loss_type=apo_zero_unpaired, which has no KL term"
    }
}
