import Distributed
import Foundation
import Models
import Yams

/// Everything that defines a training run. Read from a YAML recipe (`--config`), then
/// overridden by command-line flags; its canonical JSON is compared across ranks at start-up
/// and stored with every checkpoint. The keys, with their types, defaults, limits and help,
/// are declared once in `RecipeKeys`; `recipe.steps` reads one (key-path member lookup).
/// Unknown keys and out-of-range values are errors that name the key — a typo in a recipe
/// must not silently train with a default.
@dynamicMemberLookup
public struct Recipe: Codable, Equatable, Sendable {
    /// The values set so far, by key name; a key not set here has its declared default.
    private var values: [String: any Sendable] = [:]

    /// Where each key read from a recipe file was set (`recipe.yaml:12`), so a problem found
    /// after start-up (a `freeze` pattern against the loaded model, an `eval_data` file) names
    /// the line; a flag that overrides the key removes it. Not part of the recipe: not
    /// compared, not saved.
    public var origins: [String: String] = [:]

    /// Lines for the run's log about how flags and the file combined (arguments of a method a
    /// flag replaced, `RecipeReplacedMethods.swift`). Not part of the recipe either.
    public var notes: [String] = []

    /// The keys a command-line flag set. A flag is always deliberate, whatever its value,
    /// while a recipe file may list keys at their defaults (a run's own OUT/recipe.yaml lists
    /// them all), so a setting that would do nothing is refused when flagged, or when a file
    /// set it away from its default (`deliberate`). Not part of the recipe.
    public var flagged: Set<String> = []

    /// `steps` derived from num_train_epochs and the training rows (`TrainEpochs.apply`); until
    /// then (`train --dry-run`, which reads no data) the steps are unknown. Not part of the recipe.
    public var stepsDerived = false

    /// Keys the recipe file set for a feature a flag switched off (`switchedOff`), noted by the
    /// checks in `validate`: unused by the run, they are written to `recipe.yaml` as comments,
    /// so the file reads back (with them a run's own recipe.yaml was refused: `lora_targets
    /// needs lora_rank`). A shared box, as the checks do not mutate. Not part of the recipe.
    final class KeyNames: @unchecked Sendable { var names: Set<String> = [] }
    let unusedKeys = KeyNames()

    public init() {}

    /// Whether this run continues a checkpoint: `--resume DIR`, or `--resume latest` with one in
    /// OUT/checkpoints. `latest` with none starts a new run, to which a new run's checks apply
    /// (job scripts always pass it; the refusals skipped for resumed runs let it through).
    /// Only rank 0 looks (ranks on other nodes never touch OUT, which may not exist there); the
    /// others take the lenient side, a resumed run's, so they never refuse what rank 0 accepts.
    var resumesACheckpoint: Bool {
        guard let spec = self.resume else { return false }
        guard spec == "latest", Fatal.communicator.rank == 0 else { return true }
        return !CheckpointStore(directory: RunOutputs(self.out).checkpoints).list().isEmpty
    }

    /// Whether `key` was set (by a flag or the recipe file), not left at its default.
    public func isSet(_ key: String) -> Bool { values[key] != nil }

    /// How a message names `key`: `recipe.yaml:12: freeze` when the recipe file set it, else
    /// its flag (`--freeze`).
    public func label(_ key: String, flag: String) -> String {
        origins[key].map { "\($0): \(key)" } ?? "--" + flag
    }

    /// The declarations, and the same as a list (in declaration order) with the Swift property
    /// name of each, which is how the `train` command matches its flags to keys.
    public static let declared = RecipeKeys()
    public static let keys: [(property: String, key: any AnyRecipeKey)] = Mirror(reflecting: declared).children.compactMap {
        guard let label = $0.label, let key = $0.value as? any AnyRecipeKey else { return nil }
        return (label, key)
    }
    public static let knownKeys = Set(keys.map(\.key.name))
    public static func key(named name: String) -> (any AnyRecipeKey)? { keys.first { $0.key.name == name }?.key }

    public subscript<V>(key: RecipeKey<V>) -> V {
        get { values[key.name].map { $0 as! V } ?? key.defaultValue }
        set { values[key.name] = newValue }
    }

    public subscript<V>(dynamicMember path: KeyPath<RecipeKeys, RecipeKey<V>>) -> V {
        get { self[Recipe.declared[keyPath: path]] }
        set { self[Recipe.declared[keyPath: path]] = newValue }
    }

    /// The tokens of a row that the loss trains (completion_only_loss, assistant_only_loss).
    public var lossScope: LossScope {
        LossScope(completionOnly: self.completionOnlyLoss, assistantOnly: self.assistantOnlyLoss)
    }

    public static func == (a: Recipe, b: Recipe) -> Bool { keys.allSatisfy { $0.key.same(a, b) } }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: RecipeCodingKey.self)
        for (_, key) in Recipe.keys { try key.encode(self, to: &c) }
    }

    /// Decodes only the keys present (a checkpoint's `state.json`); the rest keep their defaults.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: RecipeCodingKey.self)
        for (_, key) in Recipe.keys { try key.decode(c, into: &self) }
    }

    /// Range checks of every key (the message names the key as recipes spell it), and the
    /// objective's arguments (`otr`'s `k`, …), before anything is loaded or sized.
    public func validate() throws {
        let k = Recipe.declared
        // Before the keys' limits, whose words for rewards list the function names only.
        if let bad = self.rewards.first(where: { RewardFunction.parse($0) == nil }), let why = RewardFunction.directoryProblem(bad) {
            throw RecipeError("\(named(k.rewards)): \(why)")
        }
        for (_, key) in Recipe.keys { try key.check(self, prefix: "recipe: ") }
        let objective = try locating([k.objectiveArgs, k.objective]) { try ObjectiveRegistry.make(name: self.objective, args: self.objectiveArgs) }
        // Refusals added on 2026-12-04 (flags at their defaults, sampling keys with scored data,
        // --reward beside rft/semievol) do not apply to a resumed run: its keys must match a
        // checkpoint that was accepted when it started.
        if !resumesACheckpoint { try checkRolloutKeysNeedASampler(objective) }
        // The reward functions with their arguments, as the run builds them (a regex without its pattern).
        let rewardFunctions: [RewardFunction]
        do { rewardFunctions = self.rewards.isEmpty ? [] : try RewardFunction.make(specs: self.rewards, args: self.rewardArgs) } catch let e as ScorerError {
            // A recipe file's line in front, as `locating` puts it: reward_args' when the message is about an argument.
            let key: any AnyRecipeKey = "\(e)".contains("--reward-arg") ? k.rewardArgs : k.rewards
            guard let line = origins[key.name] else { throw e }
            throw RecipeError("\(line): \(e)")
        }
        let selfTraining = try locating([k.selfTrainArgs, k.selfTrain, k.selfTrainScorer]) { try SelfTrainOptions(recipe: self) }
        let selectionReadsReference = try locating([k.selectionArgs, k.selection, k.selectionPool]) { try SelectionRegistry.validate(self) }
        try checkMethodsCombine(objective, selectionReadsReference: selectionReadsReference)
        try checkDistillation(objective)
        try checkUnpaired(objective)
        try checkSettingsCombine(objective, rewards: rewardFunctions)
        if self.numTrainEpochs > 0, let why = TrainEpochs.unsupported(self, objective: objective) {
            throw RecipeError("\(named(k.numTrainEpochs)) counts passes over the training rows, batch_size of them a step; \(why): give --steps")
        }
        try checkLossScope(objective)
        try locating([k.selfTrain, k.unlabelled]) { try SelfTrainSetup.check(selfTraining, recipe: self, objective: objective) }
        if !resumesACheckpoint { try checkLoRAKeysNeedRank() }
        // merge_lora may change on resume (it only adds an output), so a resumed run checks it
        // here: a non-LoRA run resumed with --merge-lora wrote no model-merged/ and said nothing.
        if resumesACheckpoint && self.loraRank == 0 && self.mergeLora && deliberate(k.mergeLora) {
            throw RecipeError("\(named(k.mergeLora)) needs lora_rank (--lora-rank r) > 0: the run being resumed fine-tunes every weight, so there are no adapters to merge")
        }
        if self.selection == "none" && deliberate(k.selectionPool) && !switchedOff(k.selectionPool, by: k.selection) {
            // As selection_args without a selector: set alone it would be silently ignored.
            throw RecipeError("\(named(Recipe.declared.selectionPool)) needs a selector (--selection NAME): without one it has no effect")
        }
        try checkKeysThatWouldDoNothing()
        if self.heldoutFraction != Recipe.declared.heldoutFraction.defaultValue
            || (deliberate(Recipe.declared.heldoutFraction) && !resumesACheckpoint) {
            // The fraction splits a --data file; where no split happens it would be ignored
            // (given as a flag, at its default value too).
            if let h = self.heldout {
                throw RecipeError("\(named(Recipe.declared.heldoutFraction)) has no effect with heldout (--heldout \(h)): the held-out set is that file")
            }
            if self.data == RunSetup.builtinData {
                throw RecipeError("\(named(Recipe.declared.heldoutFraction)) has no effect on the built-in data, whose held-out set is built apart from its training rows (OUT/data/heldout.jsonl); give --data FILE to split a file of your own")
            }
        }
    }

    /// Keys of one optimizer or one feature, set away from their default where that optimizer
    /// or feature is not used: they would be ignored, so they are refused naming what they need.
    func checkKeysThatWouldDoNothing() throws {
        let k = Recipe.declared
        func refuse(_ key: any AnyRecipeKey, _ why: String, off: any AnyRecipeKey) throws {
            guard !switchedOff(key, by: off) else { return }
            throw RecipeError("\(named(key)) \(why): here it would have no effect")
        }
        if self.optimizer != .sgd && deliberate(k.momentum) { try refuse(k.momentum, "is SGD's momentum (--optimizer sgd)", off: k.optimizer) }
        if self.optimizer == .sgd {
            if deliberate(k.beta1) { try refuse(k.beta1, "is AdamW's (--optimizer adamw)", off: k.optimizer) }
            if deliberate(k.beta2) { try refuse(k.beta2, "is AdamW's (--optimizer adamw)", off: k.optimizer) }
            if deliberate(k.adamEps) { try refuse(k.adamEps, "is AdamW's (--optimizer adamw)", off: k.optimizer) }
        }
        // Added 2026-12-04, for new runs only (a resumed run's keys match its checkpoint's).
        if self.loraRank > 0 && self.saveFormat == .hf && deliberate(k.saveFormat) && !resumesACheckpoint {
            try refuse(k.saveFormat, "hf chooses the full model's files; a LoRA run writes model/ as a peft adapter whatever the format, and model-base/ and model-merged/ in the Hugging Face layout already", off: k.loraRank)
        }
        if self.nanPolicy != .skip && deliberate(k.nanSkipLimit) {
            try refuse(k.nanSkipLimit, "bounds the steps nan_policy skip skips in a row (--nan-policy skip)", off: k.nanPolicy)
        }
        if self.saveEvery == 0 && deliberate(k.keepLast) {
            try refuse(k.keepLast, "prunes checkpoints, which need save_every (--save-every N)", off: k.saveEvery)
        }
        if self.selfTrain == "none" && deliberate(k.selfTrainEvery) {
            try refuse(k.selfTrainEvery, "spaces self-training rounds, which need self_train (--self-train METHOD)", off: k.selfTrain)
        }
        // These two were accepted before 2026-12-04: a run resumed from then keeps its keys
        // (min_lr_ratio must match its checkpoint's), so only a new run is refused.
        if self.schedule == .constant && deliberate(k.minLRRatio) && !resumesACheckpoint {
            try refuse(k.minLRRatio, "is where the cosine and linear schedules end (--schedule cosine|linear)", off: k.schedule)
        }
        // With no held-out set (heldout_fraction 0, no --heldout, no --eval-data) nothing is evaluated.
        if self.heldoutFraction == 0 && self.heldout == nil && self.data != RunSetup.builtinData && self.evalData.isEmpty && !resumesACheckpoint {
            let why = "acts on the held-out set, and heldout_fraction 0 without --heldout or --eval-data leaves none"
            if self.evalEvery != 0 && deliberate(k.evalEvery) { try refuse(k.evalEvery, why, off: k.heldoutFraction) }
            if self.evalExamples > 0 && deliberate(k.evalExamples) { try refuse(k.evalExamples, why, off: k.heldoutFraction) }
        }
        // Read by the evaluations' greedy answers, self-training (unless its own
        // max_new_tokens argument is given) and spin only.
        let selfTrainReads = self.selfTrain != "none" && (self.selfTrainArgs["max_new_tokens"] == nil || resumesACheckpoint)
        if deliberate(k.maxNewTokens) && self.evalExamples == 0 && !selfTrainReads && self.objective != "spin" {
            try refuse(k.maxNewTokens, "is the length of generated answers, in evaluations (--eval-examples N > 0), self-training and spin", off: k.evalExamples)
        }
    }

    /// Methods that cannot run together, or a key none of the chosen methods reads, refused
    /// before anything loads: self-training makes every batch from the model's answers, so a
    /// rollout objective's sampler would never run (relift trapped, grpo failed at step 1,
    /// chord silently trained without rollouts); a generation larger than the run sampled
    /// rollouts for steps that never come; `--ref-model` read by nothing was ignored.
    func checkMethodsCombine(_ objective: Objective, selectionReadsReference: Bool) throws {
        let k = Recipe.declared
        if self.selection != "none" {
            // A selector replaces the batch producer: pairs, rollouts, scored samples and the
            // model's own answers would never be made.
            let selector = "\(named(k.selection)) \(self.selection)"
            if objective.requirements.pairs {
                throw RecipeError("\(selector) chooses single sequences; objective \(self.objective) trains on pairs")
            }
            if objective.requirements.rollouts || self.scoredData {
                let what = self.scoredData ? "--scored-data trains on the samples of --data" : "objective \(self.objective) trains on rollouts it samples"
                throw RecipeError("\(selector) chooses among the rows of --data, but \(what): drop --selection or pick an SFT objective")
            }
            if self.selfTrain != "none" || objective is SPINObjective {
                let maker = objective is SPINObjective ? "objective spin" : "--self-train \(self.selfTrain)"
                throw RecipeError("\(selector) chooses among the rows of --data, but \(maker) makes the batches from the model's own answers: drop one of them")
            }
        }
        if self.selfTrain != "none" && (objective.requirements.rollouts || self.scoredData) {
            let what = self.scoredData ? "scored_data trains on the samples of --data" : "objective \(self.objective) trains on rollouts it samples"
            throw RecipeError("\(named(k.selfTrain)) \(self.selfTrain) makes each step's batch from the model's own answers, but \(what): drop one of them")
        }
        // Only grpo, rloo, gmpo and a2po evaluate with rollouts (TRL's GRPOTrainer, RLOOTrainer, GMPOTrainer, A2POTrainer); the other rollout objectives
        // mix in demonstrations that TRL has no evaluation for, and evaluate the held-out NLL.
        if deliberate(k.evalRollouts) && !(objective is RolloutPolicyObjective && !self.scoredData) && !switchedOff(k.evalRollouts, by: k.objective) {
            let with = self.scoredData ? "scored_data (--scored-data)" : "objective \(self.objective)"
            throw RecipeError("\(named(k.evalRollouts)) is read by grpo's, rloo's, gmpo's and a2po's evaluation, which rolls out the held-out prompts as TRL's GRPOTrainer, RLOOTrainer, GMPOTrainer and A2POTrainer do: with \(with) it would have no effect")
        }
        if self.evalRollouts > 0 && self.evalExamples == 0 && !switchedOff(k.evalRollouts, by: k.evalExamples) {
            throw RecipeError("\(named(k.evalRollouts)) \(self.evalRollouts) rolls out held-out prompts, and \(named(k.evalExamples)) 0 gives it none: here it would have no effect")
        }
        if objective.requirements.rollouts && self.stepsPerGeneration > self.steps && !switchedOff(k.stepsPerGeneration, by: k.steps, unused: false) {
            throw RecipeError("\(named(k.stepsPerGeneration)) \(self.stepsPerGeneration) is more than steps (\(self.steps)): a generation would sample rollouts for steps that never run")
        }
        let r = objective.requirements
        try checkTrainingNoiseKeepsRatios(objective)
        if r.tokenLabels && self.refModel == nil {
            throw RecipeError("objective \(self.objective) scores its tokens once, ℓ_base − ℓ_ref with the initial weights as the base (scores=fixed, the paper's): it needs --ref-model (the paper's reference is the base tuned on a small clean subset; without one every score is 0), or --objective-arg scores=online")
        }
        // Q-Tuning's token pruning masks out some of a Q2 row's tokens, and labels fixed per row
        // no longer line up with what it trains (it trapped at the first step).
        if r.tokenLabels && self.selection == "q-tuning", (Double(decimal: self.selectionArgs["token_budget"] ?? "0.7") ?? 0.7) < 1 {
            throw RecipeError("objective \(self.objective) with scores=fixed labels each training row's tokens before the first step; \(named(k.selection)) q-tuning prunes tokens of some rows (token_budget \(self.selectionArgs["token_budget"] ?? "0.7") < 1), which the fixed labels do not follow: use --objective-arg scores=online, or --selection-arg token_budget=1")
        }
        if r.tokenLabels && self.selfTrain != "none" {
            throw RecipeError("objective \(self.objective) with scores=fixed labels the training set's tokens before the first step; --self-train \(self.selfTrain) trains on rows generated later, which have none: use --objective-arg scores=online")
        }
        if let path = self.refModel, !objective.requirements.referenceModel && !r.tokenLabels && !selectionReadsReference,
           !switchedOff(k.refModel, by: k.objective) && !switchedOff(k.refModel, by: k.selection) {
            throw RecipeError("\(named(k.refModel)) \(path) is read by objectives with a reference term (dpo, online-dpo, a2po, asft, iwsft, token-clean, forgetting, superhf; grpo, rloo, gmpo, uft with beta > 0), as gkd's teacher, and by selection learnability: with objective \(self.objective) it would have no effect")
        }
    }

    /// LoRA's other keys act only with `lora_rank` > 0; set without it they would be silently
    /// ignored (a full fine-tune where the user asked for adapters), so they are refused.
    func checkLoRAKeysNeedRank() throws {
        guard self.loraRank == 0 else { return }
        let k = Recipe.declared
        // Given on the command line they are refused at their defaults too (`--lora-alpha 16`).
        let keys: [any AnyRecipeKey] = [k.loraTargets, k.loraDropout, k.loraAlpha, k.mergeLora]
        if let key = keys.first(where: { $0.deliberate(in: self) && !switchedOff($0, by: k.loraRank) }) {
            throw RecipeError("\(named(key)) needs lora_rank (--lora-rank r) > 0: without it the run fine-tunes every weight and \(key.name) has no effect")
        }
    }

    /// Sorted-key JSON: the byte-exact form compared across ranks and saved with checkpoints.
    public var canonicalJSON: String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return String(decoding: (try? enc.encode(self)) ?? Data(), as: UTF8.self)
    }

    /// `recipe.yaml`: every key, in declaration order; it reads back to this recipe exactly
    /// (YAMLEncoder would round numbers to 15 digits). Two kinds of key are written as comments:
    /// those of a feature a flag switched off, and a `resume` naming one checkpoint — the file
    /// then runs the same settings from the start, where `resume: DIR` was refused as soon as
    /// `keep_last` had deleted DIR (`resume: latest` stays: it continues OUT's own checkpoints,
    /// or starts afresh where there are none).
    public var yaml: String {
        // An objective that fixes the rollouts per prompt (online-dpo: 2) runs at that count when
        // the key is unset: written so, the file reads back to what the run did.
        let fixedRollouts = fixedRolloutsPerPrompt
        let pairs = Recipe.keys.compactMap { k in k.key.yaml(of: self).map { (Node(k.key.name), $0) } }.map { pair in
            pair.0.string == Recipe.declared.rollouts.name ? (pair.0, fixedRollouts.map { Node("\($0)") } ?? pair.1) : pair
        }
        let resumed = pairs.filter { $0.0.string == Recipe.declared.resume.name && self.resume != "latest" }
        let unused = pairs.filter { unusedKeys.names.contains($0.0.string ?? "") }
        // num_train_epochs sets the steps from the data (TrainEpochs); the file derives them again.
        let derived = pairs.filter { $0.0.string == Recipe.declared.steps.name && self.numTrainEpochs > 0 }
        let used = pairs.filter { pair in !(unused + resumed + derived).contains { $0.0 == pair.0 } }
        var text = (try? Yams.serialize(node: Node(used))) ?? ""
        func comment(_ header: String, _ pairs: [(Node, Node)]) {
            guard !pairs.isEmpty, let lines = try? Yams.serialize(node: Node(pairs)) else { return }
            text += header + "\n" + lines.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { "# " + $0 }.joined(separator: "\n") + "\n"
        }
        comment("# Set by the recipe file for a feature a flag switched off; not used by this run:", unused)
        comment("# This run continued the checkpoint below; this file runs the same settings from step 0:", resumed)
        if self.numTrainEpochs > 0 && !stepsDerived {
            // Not the default --steps it still holds (a dry run printed "# steps: 1000" for a 6-step run).
            text += "# steps follow from num_train_epochs and the training rows, which a run reads (this recipe does not know them yet)\n"
        } else {
            comment("# steps follow from num_train_epochs and the training rows; this file derives them again from its own:", derived)
        }
        return text
    }

    /// Whether `key` was chosen rather than left alone: given as a flag (at any value), or set
    /// away from its default by the recipe file.
    func deliberate<V: Equatable>(_ key: RecipeKey<V>) -> Bool {
        self[key] != key.defaultValue || flagged.contains(key.name)
    }

    /// Whether the feature `key` belongs to was switched off on the command line (`--lora-rank
    /// 0`, `--selection none`, `--objective nll`) over a recipe file that set `key` for it: the
    /// user's way to run a recipe without that feature, so `key` is not refused as unread.
    /// `unused: false` where the key is still read (steps_per_generation above a --steps that
    /// was lowered still sizes the one generation).
    func switchedOff(_ key: any AnyRecipeKey, by feature: any AnyRecipeKey, unused: Bool = true) -> Bool {
        let off = origins[key.name] != nil && values[feature.name] != nil && origins[feature.name] == nil
        if off && unused { unusedKeys.names.insert(key.name) }
        return off
    }

    /// How a check across keys names the key it refuses: `recipe.yaml:7: heldout_fraction`
    /// when the recipe file set it, else its flag, `--heldout-fraction` (`label`).
    func named(_ key: any AnyRecipeKey) -> String { label(key.name, flag: key.flag) }

    /// Runs a check whose errors name keys in their own words (`objective dft: unknown
    /// argument(s) …`), putting the recipe line of the first of `keys` the file set in front,
    /// so the user is sent to the line to edit (no prefix when flags set them all).
    func locating<T>(_ keys: [any AnyRecipeKey], _ check: () throws -> T) throws -> T {
        do { return try check() } catch {
            guard let line = keys.lazy.compactMap({ origins[$0.name] }).first,
                  error is RecipeError || error is ObjectiveError || error is BatchSelectionError else { throw error }
            throw RecipeError("\(line): \(error)")
        }
    }

    /// The first key whose value differs between two recipes, with both values; `only` limits
    /// the comparison (the resume check skips keys a resumed run may change).
    public func firstDifference(from other: Recipe, only: (any AnyRecipeKey) -> Bool = { _ in true })
        -> (key: String, mine: String, other: String)? {
        for (_, key) in Recipe.keys where only(key) && !key.same(self, other) {
            return (key.name, key.text(of: self), key.text(of: other))
        }
        return nil
    }

    /// Writes `recipe.yaml` into the output directory: the one place that does (a new run at
    /// start-up, a resumed run once its checkpoint is verified).
    public static func write(_ recipe: Recipe) -> String? {
        do {
            try FileManager.default.createDirectory(atPath: recipe.out, withIntermediateDirectories: true)
            try recipe.yaml.write(toFile: RunOutputs(recipe.out).recipe, atomically: true, encoding: .utf8)
            return nil
        } catch {
            return "\(recipe.out): cannot write the recipe (\(MessageText.reason(error, for: recipe.out)))"
        }
    }
}

/// Levenshtein distance, for "did you mean" hints on misspelled keys.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var prev = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var cur = [i] + [Int](repeating: 0, count: b.count)
        for j in 1...max(b.count, 1) where !b.isEmpty {
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        prev = cur
    }
    return a.isEmpty ? b.count : prev[b.count]
}
