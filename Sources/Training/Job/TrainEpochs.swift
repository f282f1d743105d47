import Foundation

/// `num_train_epochs` (TRL's and transformers' name): the run's length given as passes over
/// the training rows instead of steps. As in transformers' Trainer, each epoch is ⌈N / batch_size⌉
/// steps, the last a short batch of what is left (`EpochSampler`), so E epochs are
/// ⌈E·⌈N / batch_size⌉⌉ steps and each step row's `epoch` is step ÷ ⌈N / batch_size⌉. (A run
/// given --steps streams across epochs instead, `UniformSampler`: every step batch_size rows,
/// epoch = step × batch_size ÷ N.) The steps are derived once the data is loaded (every rank
/// holds the same rows), before anything is sized from them; recipe.yaml keeps them as a
/// comment (`Recipe.yaml`), so the file derives them again from its own data.
public enum TrainEpochs {
    /// Why this recipe's steps are not passes over --data's rows (nil: they are). Sampling
    /// objectives draw prompts per generation, selection draws pools of candidates, and
    /// self-training mixes in rows it makes: each counts its own way, so they take --steps.
    static func unsupported(_ r: Recipe, objective: Objective) -> String? {
        let k = Recipe.declared
        if r.selection != "none" { return "\(r.named(k.selection)) \(r.selection) draws a pool of selection_pool × batch_size candidates a step" }
        if r.selfTrain != "none" { return "self-training (\(r.named(k.selfTrain)) \(r.selfTrain)) trains on rows it makes as well" }
        if r.objective == "spin" { return "\(r.named(k.objective)) spin trains on answers the model makes" }
        if r.samplesRollouts(objective) { return "\(r.named(k.objective)) \(r.objective) samples rollouts of prompts, steps_per_generation × num_iterations steps per generation" }
        return nil
    }

    /// The rows one epoch holds: training pairs for a preference objective, else training rows.
    public static func rows(_ train: Dataset, objective: Objective) -> Int {
        objective.requirements.pairs ? train.pairCount : train.count
    }

    /// ⌈epochs × ⌈rows ÷ batch_size⌉⌉, at least one step: transformers' max_steps for
    /// num_train_epochs, `math.ceil` of the same double product — 1.1 × 50 is 55.00000000000001
    /// there and here, so 56 steps, as TRL runs.
    public static func steps(epochs: Double, rows: Int, batchSize: Int) -> Int {
        max(1, Int((epochs * Double(EpochSampler.batchesPerEpoch(rows: rows, batchSize: batchSize))).rounded(.up)))
    }

    /// The epochs as given, every digit (`%g` printed 333333.3335 as 333333).
    static func text(_ epochs: Double) -> String {
        epochs == epochs.rounded() && abs(epochs) < 1e15 ? String(Int(epochs)) : "\(epochs)"
    }

    /// The passes over the rows at the end of `step` (1-based), each metrics row's `epoch`:
    /// step ÷ ⌈rows ÷ batch_size⌉ for epochs that end with a short batch, else the rows drawn ÷ rows.
    public static func epoch(afterStep step: Int, rows: Int, batchSize: Int, shortLastBatch: Bool) -> Double {
        shortLastBatch ? Double(step) / Double(EpochSampler.batchesPerEpoch(rows: rows, batchSize: batchSize))
                       : Double(step) * Double(batchSize) / Double(rows)
    }

    /// Whether this run's epochs end with a short batch (`EpochSampler`): under num_train_epochs.
    static func endsEpochsShort(_ r: Recipe) -> Bool { r.numTrainEpochs > 0 }

    /// The order a step draws its `batch_size` rows from, of `rows` in all: epochs with a short
    /// last batch under num_train_epochs, else the stream of epochs.
    static func sampler(_ r: Recipe, rows: Int) -> BatchSource {
        endsEpochsShort(r) ? EpochSampler(datasetSize: rows, batchSize: r.batchSize, seed: r.seed)
                             : UniformSampler(datasetSize: rows, batchSize: r.batchSize, seed: r.seed)
    }

    /// The recipe with its steps derived from `num_train_epochs` (unchanged when that is 0),
    /// and the line that says so. A --steps given as well must agree.
    static func apply(_ recipe: Recipe, rows: Int, unit: String) throws -> (Recipe, String?) {
        guard recipe.numTrainEpochs > 0 else { return (recipe, nil) }
        let k = Recipe.declared
        let derived = steps(epochs: recipe.numTrainEpochs, rows: rows, batchSize: recipe.batchSize)
        let how = "\(text(recipe.numTrainEpochs)) epoch\(recipe.numTrainEpochs == 1 ? "" : "s") of \(rows) training \(unit) at batch_size \(recipe.batchSize)"
        guard derived <= 100_000_000 else {
            throw RecipeError("\(recipe.named(k.numTrainEpochs)) \(text(recipe.numTrainEpochs)): \(how) are \(derived) steps, more than the 100000000 a run may take")
        }
        if recipe.deliberate(k.steps) && recipe.steps != derived {
            throw RecipeError("\(recipe.named(k.steps)) \(recipe.steps) and \(recipe.named(k.numTrainEpochs)) \(text(recipe.numTrainEpochs)) disagree: \(how) are \(derived) steps; give one of them")
        }
        var r = recipe
        r.steps = derived
        r.stepsDerived = true
        try r.checkReferenceSyncInterval()
        try r.checkBEMAInterval()
        return (r, "num_train_epochs \(text(recipe.numTrainEpochs)): \(how) are \(derived) steps")
    }
}

extension Recipe {
    /// What `train --dry-run`, which reads no data, cannot check: a `steps` given beside
    /// `num_train_epochs` must equal the steps the training rows give (`TrainEpochs.apply`).
    public var uncheckedWithoutData: [String] {
        let k = Recipe.declared
        guard self.numTrainEpochs > 0 && deliberate(k.steps) else { return [] }
        return ["note: \(named(k.steps)) \(self.steps) beside \(named(k.numTrainEpochs)) \(TrainEpochs.text(self.numTrainEpochs)) is checked when the run starts, against the steps the training rows give; --dry-run reads no data"]
    }
}
