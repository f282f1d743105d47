import Distributed
import Foundation
import Models
import TensorCore

/// Start-up of a run: everything that can fail on bad input happens here, before the first
/// step, and every failure is collective (`Fatal.collective`) so the message prints once
/// and the job ends on all ranks.
public struct RunSetup {
    public let recipe: Recipe
    public let tokenizer: Tokenizer
    public let model: LanguageModel
    public let train: Dataset
    public let heldOut: Dataset
    public let objective: Objective
    /// The frozen reference, until `--precompute-ref-log-probs` has scored the pairs (or rows) with it
    /// (`precomputedReference` then stands in its place). Every copy of a setup — the job's, the
    /// trainer's, the checkpointer's — shares one `ReferenceSlot`, so releasing it frees the weights.
    public var referenceModel: LanguageModel? { referenceSlot.model }
    let referenceSlot: ReferenceSlot
    /// Whether what the model trains on has {messages} rows: --data's, or GRPO's --prompts /
    /// self-training's --unlabelled (the chat template lays them out and is saved with the model).
    public var trainsOnMessages = false
    /// Under a pairwise objective (dpo): the held-out pairs, chosen at 2i and rejected at 2i + 1,
    /// on which evaluation runs the objective itself as TRL's DPOTrainer does
    /// (`Trainer.evaluatePairs`); `heldOut` holds their chosen answers, which generation's exact
    /// match, the log's counts and the ranks' agreement check read.
    public var heldOutPairs: Dataset? = nil
    /// Under kto: the held-out labelled rows, both labels, on which evaluation runs the
    /// objective itself as TRL's KTOTrainer does (`Trainer.evaluateUnpaired`); `heldOut` holds
    /// the desirable ones, the references of generation's exact match.
    public var heldOutLabelled: Dataset? = nil
    /// The held-out rows an evaluation reads: kto's labelled rows, which may hold no desirable
    /// one (exact match then answers none, and the kto loss is still evaluated), else `heldOut`.
    public var evaluatedHeldOutCount: Int { (heldOutLabelled ?? heldOut).count }
    /// The held-out rows the evaluation reads, both answers of dpo's pairs and every kto row:
    /// what the ranks' agreement check and a checkpoint's hash of the evaluated sets cover.
    public var evaluatedHeldOut: Dataset { heldOutPairs ?? heldOutLabelled ?? heldOut }
    /// `--precompute-ref-log-probs`: the reference's log-probs of the pairs (or rows), scored before the
    /// first step (`Trainer.precomputeReferenceIfNeeded`), in place of `referenceModel`.
    public var precomputedReference: PrecomputedReference? { referenceSlot.precomputed }

    public init(recipe: Recipe, tokenizer: Tokenizer, model: LanguageModel, train: Dataset, heldOut: Dataset, objective: Objective,
                referenceModel: LanguageModel?, trainsOnMessages: Bool = false, heldOutPairs: Dataset? = nil, heldOutLabelled: Dataset? = nil) {
        self.recipe = recipe; self.tokenizer = tokenizer; self.model = model; self.train = train; self.heldOut = heldOut
        self.objective = objective; referenceSlot = ReferenceSlot(referenceModel); self.trainsOnMessages = trainsOnMessages
        self.heldOutPairs = heldOutPairs; self.heldOutLabelled = heldOutLabelled
    }

    public static func prepare(recipe: Recipe, comm: Communicator, log: (String) -> Void) -> RunSetup {
        checkSameRecipe(recipe, comm: comm)

        let objective = Fatal.collective { try ObjectiveRegistry.make(name: recipe.objective, args: recipe.objectiveArgs) }
        let kind: ModelKind = objective.requirements.sequenceScores ? .rewardModel : .causalLM
        let (model, tokenizer) = Fatal.collective { () throws -> (LanguageModel, Tokenizer) in
            do { return try LoRATraining.loadModel(recipe.model, seed: recipe.seed, lora: LoRATraining.config(recipe), kind: kind) } catch var e as UnknownLoRATarget {
                e.source = recipe.label("lora_targets", flag: "lora-targets")
                throw e
            }
        }
        // Rank 0's weights are broadcast below; the architecture and tokenizer must be the same.
        SameInputs.check("--model \(recipe.model)", architecture: model, comm: comm)
        SameInputs.check("--model \(recipe.model)", tokenizer: tokenizer, comm: comm)
        // Rewards are read at the last token that is not the model's pad_token_id (a reward model's
        // config.json), else the tokenizer's pad (its eos without one, `BPETokenizer.padId`), as
        // TRL's RewardTrainer sets config.json's pad_token_id; the saved model keeps that id.
        (objective as? RewardObjective)?.padTokenId = ModelDirectory.rewardPadId(model) ?? tokenizer.padId
        let chat = Fatal.collective { try ChatTemplate.resolve(recipe.chatTemplate, tokenizer: tokenizer) }
        let template = chat.template
        // Before the data is read: it says what a conversation's tokens hold beyond its messages.
        if comm.isCoordinator { log("chat template: \(template.rawValue) (\(chat.reason))") }
        if comm.isCoordinator, let note = contextNote(recipe, model: model) { log(note) }
        if comm.isCoordinator, let note = (tokenizer as? BPETokenizer)?.eosNote { log(note) }
        if comm.isCoordinator, let note = (tokenizer as? BPETokenizer)?.bosNote { log(note) }
        let (train, heldOutRows) = Fatal.collective { () throws -> (Dataset, Dataset) in
            do {
                return try loadData(recipe, objective: objective, tokenizer: tokenizer, template: template, context: model.maxSequenceLength)
            } catch var e as DataError where e.longestUnfitted != nil {
                e.addMaxLengthHint(maxLength: recipe.maxLength, context: model.maxSequenceLength)
                throw e
            } catch var e as DataError where e.description.contains(#"missing field "completion""#)
                        && objective is OnlineDPOObjective && recipe.prompts == nil {
                // TRL's OnlineDPO datasets are prompts alone; the way to give them here was not said.
                e.description += " (objective \(objective.name) reads --data's rows with their completions; give prompts alone as --prompts FILE, beside --data)"
                throw e
            }
        }
        // Pairs (dpo): the objective evaluates the pairs; the other held-out figures take their chosen answers.
        let heldOutPairs = objective.requirements.pairs ? heldOutRows : nil
        let heldOutLabelled = objective.requirements.unpaired ? heldOutRows : nil
        let heldOut = heldOutPairs?.chosenOnly ?? heldOutLabelled?.desirableOnly ?? heldOutRows
        if recipe.data != builtinData {
            SameInputs.check("--data \(recipe.data)", examples: train.examples, comm: comm)
            // Under dpo the pairs, both answers, under kto every labelled row: the evaluation reads them all.
            SameInputs.check(recipe.heldout.map { "--heldout \($0)" } ?? "--data \(recipe.data) (its held-out split)",
                             examples: (heldOutPairs ?? heldOutLabelled ?? heldOut).examples, comm: comm)
        } else if let h = recipe.heldout {
            SameInputs.check("--heldout \(h)", examples: heldOut.examples, comm: comm)
        }
        // Read later (rollouts, self-training rounds), each rank from its own copy.
        if let p = recipe.prompts { SameInputs.check("--prompts \(p)", file: p, comm: comm) }
        if let u = recipe.unlabelled { SameInputs.check("--unlabelled \(u)", file: u, comm: comm) }
        if comm.isCoordinator {
            log(train.report.summary + (recipe.data == builtinData ? " (the run writes them to \(dataPaths(recipe).train))" : ""))
            if let note = lengthNote(train.report, recipe: recipe, context: model.maxSequenceLength) { log(note) }
            if let h = recipe.heldout {
                // Lines skip_bad_lines skipped are counted, as for --data (the file's row count said nothing).
                log(recipe.scoredData ? "held-out: \(heldOut.count) rows of \(h) with a positive score (the others are no references)"
                    : heldOut.report.skippedLines.isEmpty ? "held-out: \((heldOutLabelled ?? heldOut).count) \(heldOutPairs == nil ? "examples" : objective.requirements.pairUnit) from \(h)" : "held-out: " + heldOut.report.summary)
                if let note = lengthNote(heldOut.report, recipe: recipe, context: model.maxSequenceLength) { log(note) }
            }
            else if recipe.data == builtinData { log("held-out: \(heldOut.count) built-in examples apart from the training rows (\(recipe.out)/data/heldout.jsonl)") }
            else if recipe.scoredData {
                log("held-out: \(heldOut.count) of the rows split off with seed \(recipe.seed): those with a positive score (the others, wrong answers, are no references)")
            }
            else { log("held-out: \((heldOutLabelled ?? heldOut).count) of \(heldOutPairs == nil ? "them" : "the " + objective.requirements.pairUnit), split off with seed \(recipe.seed)") }
            if recipe.generationExamples(objective) > 0, let note = heldOut.textRowsNote(which: "held-out ") { log(note) }
            if let note = promptOnlyNote(heldOut, recipe: recipe, objective: objective) { log(note) }
            if let kto = objective as? KTOObjective {
                let n = train.labelCounts
                log("kto: \(n.desirable) desirable and \(n.undesirable) undesirable training rows" + (heldOutLabelled.flatMap { h in
                    let m = h.labelCounts
                    return h.count == 0 ? nil : " (held out: \(m.desirable) and \(m.undesirable)"
                        + (recipe.evalExamples > 0 ? "; exact match answers the desirable ones)" : ")") } ?? ""))
                if let note = kto.balanceNote(desirable: n.desirable, undesirable: n.undesirable) { log(note) }
            }
        }
        if heldOut.count > 0 && heldOut.examples.allSatisfy(\.isPromptOnly) && recipe.rolloutsPerEvaluationPrompt(objective) == 0 {
            Fatal.agree("\(recipe.heldout ?? recipe.data): the held-out rows are prompts only, which have no NLL, and this run evaluates the held-out NLL (\(recipe.evalExamples == 0 ? "--eval-examples 0" : "--eval-rollouts 0")): evaluate by rolling them out (--eval-rollouts -1, --eval-examples above 0), give rows with completions, or no held-out set (--heldout-fraction 0)")
        }
        if train.count == 0 { Fatal.agree("\(recipe.data): no training examples left after the held-out split") }
        // {"text"} rows (no prompt, no answer) train as they are; methods that answer --data's
        // prompts, or read its rows as scored samples, have nothing to start from.
        let answers = recipe.scoredData ? "scored_data reads --data's rows as prompts with sampled completions"
            : objective.requirements.rollouts && recipe.prompts == nil ? "objective \(recipe.objective) samples answers to --data's prompts (no --prompts)"
            : recipe.objective == "spin" ? "objective spin answers --data's prompts"
            : (objective as? GKDObjective)?.samples == true ? "objective gkd samples answers to --data's prompts (lmbda above 0 or seq_kd)"
            : recipe.selfTrain != "none" && recipe.unlabelled == nil ? "self-training \(recipe.selfTrain) answers --data's prompts (no --unlabelled)" : nil
        let textRow = train.examples.first(where: \.isText)
        Fatal.agree(answers.flatMap { why in textRow.map { #"\#($0.source): a {"text"} row has no prompt, and \#(why): give {"prompt", "completion"} rows"# } })
        // num_train_epochs: the steps, now that the rows are counted (the same on every rank).
        let pairs = objective.requirements.pairs
        let (stepped, epochsNote) = Fatal.collective {
            try TrainEpochs.apply(recipe, rows: TrainEpochs.rows(train, objective: objective), unit: pairs ? objective.requirements.pairUnit : "rows")
        }
        if comm.isCoordinator, let epochsNote { log(epochsNote) }
        // A reward model's over-long pairs were dropped (`Recipe.pairTruncation`): recipe.yaml says so,
        // so a run from it, or resumed with it, drops them too.
        var fitted = stepped
        fitted.truncation = recipe.pairTruncation(objective)
        Fatal.agree(recipe.unpairedEpochProblem(objective, rows: train.count) ?? recipe.unpairedDataProblem(objective, train: train.examples))
        let messages = train.report.conversations > 0
            || [recipe.prompts, recipe.unlabelled].contains { $0.map(ChatTemplateRecord.hasMessages) ?? false }
        let recorded = Fatal.collective { try ChatTemplateRecord.record(template, in: tokenizer, dataHasMessages: messages) }
        if comm.isCoordinator, let recorded { log(recorded) }

        SameInputs.check("--model \(recipe.model)", generationConfig: model.generationConfig, comm: comm)
        // Identical initial weights everywhere: the coordinator's win.
        comm.broadcast(model.parameters.valueBuffer, root: 0)

        var reference: LanguageModel? = nil
        if objective.requirements.referenceModel || objective.requirements.tokenLabels {
            if let path = recipe.refModel {
                reference = Fatal.collective { try ReferenceModel.load(path, like: model, tokenizer: tokenizer, teacher: objective is GKDObjective) }
                SameInputs.check("--ref-model \(path)", architecture: reference!, comm: comm)
                comm.broadcast(reference!.parameters.valueBuffer, root: 0)
                if let gkd = objective as? GKDObjective {
                    Fatal.agree(DistillationProducer.setupProblem(teacher: reference!, path: path, samples: gkd.samples,
                                                                  train: train.examples, heldOut: heldOut.examples))
                }
            } else {
                let r = model.makeReplica()
                r.copyParameters(from: model)
                reference = r
            }
        }
        return RunSetup(recipe: fitted, tokenizer: tokenizer, model: model, train: train, heldOut: heldOut,
                        objective: objective, referenceModel: reference, trainsOnMessages: messages, heldOutPairs: heldOutPairs,
                        heldOutLabelled: heldOutLabelled)
    }

    /// The training and held-out sets: preference pairs, the built-in tasks, or `--data`
    /// with `--heldout` or a split of it; rows fitted to max_length capped at `context`.
    static func loadData(_ recipe: Recipe, objective: Objective, tokenizer: Tokenizer, template: ChatTemplate,
                         context: Int) throws -> (Dataset, Dataset) {
        let paths = dataPaths(recipe)
        let truncation = recipe.truncation
        let maxLength = min(recipe.maxLength, context)
        let rows: JSONLReader.Rows = recipe.readsPromptOnlyRows(objective) ? .examplesOrPrompts : .examples
        if objective.requirements.pairs || objective.requirements.unpaired {
            // Pair data (dpo): chosen/rejected rows, held out by pair (both answers, as --heldout's);
            // labelled rows (kto), held out by line (a pair line's two rows together).
            let pairs = objective.requirements.pairs
            if recipe.data == builtinData {
                throw DataError(pairs ? "objective \(objective.name) trains on preference pairs: give --data FILE with {\"prompt\", \"chosen\", \"rejected\"} rows"
                                : "objective \(objective.name) trains on labelled answers: give --data FILE with {\"prompt\", \"completion\", \"label\"} rows (or preference pairs)")
            }
            func load(_ path: String) throws -> Dataset {
                pairs ? try Dataset(pairsAt: path, tokenizer: tokenizer, maxLength: maxLength, truncation: recipe.pairTruncation(objective),
                                    template: template, skipBadLines: recipe.skipBadLines, sequenceScores: objective.requirements.sequenceScores,
                                    goldAnswers: objective.requirements.goldAnswers)
                    : try Dataset(unpairedAt: path, tokenizer: tokenizer, maxLength: maxLength, truncation: truncation,
                                  template: template, skipBadLines: recipe.skipBadLines)
            }
            let all = try load(paths.train)
            guard let h = paths.heldOut else {
                return pairs ? all.splitPairs(heldOutFraction: recipe.heldoutFraction, seed: recipe.seed)
                    : all.splitByLine(heldOutFraction: recipe.heldoutFraction, seed: recipe.seed)
            }
            return (all, try load(h))
        }
        if recipe.data == builtinData {
            // Every rank builds the built-in tasks in memory (rank 0 writes the same records
            // to OUT/data/ once every input has loaded), so no rank needs rank 0's disk. They
            // are named builtin:tasks, not by those files: a run refused here writes none.
            let (trainRecords, heldRecords) = builtinRecords(seed: recipe.seed)
            func dataset(_ records: [[String: String]], _ path: String) throws -> Dataset {
                let sourced = records.enumerated().map { i, r in
                    SourcedRecord(record: .promptCompletion(prompt: r["prompt"] ?? "", completion: r["completion"] ?? ""),
                                  path: path, line: i + 1)
                }
                return try Dataset(records: sourced, path: path, tokenizer: tokenizer, maxLength: maxLength,
                                   truncation: truncation, template: template, lossScope: recipe.lossScope)
            }
            let train = try dataset(trainRecords, builtinData)
            // --heldout FILE evaluates on that file instead of the built-in held-out rows.
            if let h = recipe.heldout {
                return (train, try Dataset(path: h, tokenizer: tokenizer, maxLength: maxLength, truncation: truncation,
                                           template: template, skipBadLines: recipe.skipBadLines, lossScope: recipe.lossScope,
                                           textField: recipe.datasetTextField, rows: rows))
            }
            return (train, try dataset(heldRecords, builtinData + " (held-out rows)"))
        }
        let all = try Dataset(path: paths.train, tokenizer: tokenizer, maxLength: maxLength,
                              truncation: truncation, template: template, skipBadLines: recipe.skipBadLines,
                              lossScope: recipe.lossScope, textField: recipe.datasetTextField, rows: rows)
        if let h = paths.heldOut {
            let held = try Dataset(path: h, tokenizer: tokenizer, maxLength: maxLength,
                                   truncation: truncation, template: template, skipBadLines: recipe.skipBadLines,
                                   lossScope: recipe.lossScope, textField: recipe.datasetTextField, rows: rows)
            return (all, recipe.scoredData ? try rightAnswers(held, path: h, recipe: recipe) : held)
        }
        let (train, held) = all.split(heldOutFraction: recipe.heldoutFraction, seed: recipe.seed)
        return (train, recipe.scoredData ? try rightAnswers(held, path: paths.train, recipe: recipe) : held)
    }

    /// The log's note on held-out rows that are only a prompt (grpo's prompt-only data): grpo's
    /// evaluation rolls them out; the held-out NLL and greedy exact match pass them over.
    static func promptOnlyNote(_ heldOut: Dataset, recipe: Recipe, objective: Objective) -> String? {
        let n = heldOut.examples.filter(\.isPromptOnly).count
        guard n > 0 else { return nil }
        let use = recipe.rolloutsPerEvaluationPrompt(objective) > 0 ? "the evaluation rolls them out and scores the rollouts; eval_accuracy (greedy exact match) passes them over, having no reference"
            : "the held-out NLL and eval_accuracy pass them over (no completion to score)"
        return "note: \(n) of \(heldOut.count) held-out rows are prompts only: \(use)"
    }

    /// Scored samples held out for evaluation: only those with a positive score (reward, or
    /// advantage without one) are references — held-out exact match and loss were measured
    /// against the wrong answers too (70 % of recipes/data/scored-tasks.jsonl's rows). Rows of
    /// `path` without score fields are kept.
    static func rightAnswers(_ held: Dataset, path: String, recipe: Recipe) throws -> Dataset {
        let scores = try ScoredRows.read(path: path, skipBadLines: recipe.skipBadLines)
        let kept = held.examples.filter { e in
            guard let line = ScoredDataProducer.line(of: e.source, in: path), let row = scores[line],
                  let score = row.reward ?? row.advantage else { return true }
            return score > 0
        }
        return Dataset(examples: kept, report: held.report)
    }

    /// A max_length above the model's context is capped at the context (position embeddings
    /// or RoPE tables end there); the log says so, since recipe.yaml keeps the value asked for.
    static func contextNote(_ recipe: Recipe, model: LanguageModel) -> String? {
        guard recipe.maxLength > model.maxSequenceLength else { return nil }
        return "note: max_length \(recipe.maxLength) is above the model's context of \(model.maxSequenceLength) tokens\(model.contextReason.map { " (\($0))" } ?? ""): sequences are cut at \(model.maxSequenceLength)"
    }

    /// The note on a data file's rows longer than the run's max_length (nil: none were).
    public static func lengthNote(_ report: LoadReport, recipe: Recipe, context: Int) -> String? {
        report.lengthNote(setting: recipe.maxLength, isDefault: !recipe.isSet("max_length"), context: context)
    }

    /// A preset name builds a fresh model with the byte tokenizer; anything else is a model
    /// directory.
    public static func loadModel(_ spec: String, seed: UInt64, use: ModelUse = .training, kind: ModelKind = .causalLM) throws -> (LanguageModel, Tokenizer) {
        let tokenizer = ByteTokenizer()
        if var config = try ModelPresets.named(spec, vocabSize: tokenizer.vocabSize) {
            config.scoreHead = kind == .rewardModel
            return (GPT2(config: config, seed: seed), tokenizer)
        }
        let (m, t) = try ModelDirectory.load(spec, use: use, kind: kind, seed: seed)
        return (m, t)
    }

    static func dataPaths(_ recipe: Recipe) -> (train: String, heldOut: String?) {
        if recipe.data == builtinData {
            return (RunOutputs(recipe.out).builtinTrain, RunOutputs(recipe.out).builtinHeldout)
        }
        return (recipe.data, recipe.heldout)
    }

    public static let builtinData = "builtin:tasks"

    /// The built-in tasks of a run: 4,000 training rows and the held-out rows of the next 200
    /// whose prompts never appear in training.
    static func builtinRecords(seed: UInt64) -> (train: [[String: String]], heldOut: [[String: String]]) {
        let records = TaskGenerator.generate(count: 4200, seed: seed)
        let seen = Set(records[0..<4000].compactMap { $0["prompt"] })
        return (Array(records[0..<4000]), records[4000...].filter { !seen.contains($0["prompt"] ?? "") })
    }

    /// Writes the built-in task data under the output directory for the user to read (every
    /// rank trains on the same records built in memory). Called by the coordinator once every
    /// input has loaded and the output is locked, so a run that fails on bad input leaves no
    /// half-made output behind. With `--heldout FILE` only the training rows are written.
    public static func prepareOutput(_ recipe: Recipe) -> String? {
        let fm = FileManager.default
        do {
            if recipe.data == builtinData {
                try fm.createDirectory(atPath: recipe.out + "/data", withIntermediateDirectories: true)
                let (train, held) = builtinRecords(seed: recipe.seed)
                try TaskGenerator.writeJSONL(train, to: RunOutputs(recipe.out).builtinTrain)
                if recipe.heldout == nil { try TaskGenerator.writeJSONL(held, to: RunOutputs(recipe.out).builtinHeldout) }
            }
            return nil
        } catch {
            return "\(recipe.out): cannot prepare output directory (\(MessageText.reason(error, for: recipe.out)))"
        }
    }

    /// Ranks must run the same recipe: the coordinator's canonical form is broadcast and
    /// compared; a difference names the key.
    static func checkSameRecipe(_ recipe: Recipe, comm: Communicator) {
        guard comm.size > 1 else { return }
        let mine = recipe.canonicalJSON
        let root = comm.broadcast(mine, root: 0)
        var problem: String? = nil
        if root != mine {
            let other = (try? JSONDecoder().decode(Recipe.self, from: Data(root.utf8))) ?? Recipe()
            let key = recipe.firstDifference(from: other)?.key ?? "?"
            problem = "the recipe differs between ranks: key \"\(key)\" on rank \(comm.rank) differs from rank 0 (every rank must get the same flags and recipe)"
        }
        Fatal.agree(problem)
    }
}
