import Distributed
import Foundation
import Models
import TensorCore

/// A whole run: set-up, evaluation before, the step loop with progress and metrics,
/// evaluation after, the final model saved, and a summary. Only the coordinator prints or
/// writes; every rank computes.
public enum TrainingJob {
    public struct Summary {
        public var firstLoss: Double
        public var lastLoss: Double
        public var before: EvalResult?
        public var after: EvalResult?
        public var seconds: Double
        public var outputDirectory: String
        /// The steps done when SIGUSR1 stopped the run (`StopSignal`), or nil.
        public var stoppedAfter: Int? = nil
    }

    /// "2 threads per rank", or each rank's count when they differ: an app context per rank
    /// (`mpirun -x V -n 1 … : -n 1 …` passes `-x` to the first only) may give ranks other
    /// OPENBLAS_NUM_THREADS, which changes the sums' order in the last bits (collective).
    static func threadsLine(_ comm: Communicator) -> String {
        let counts = comm.allgather(Array(String(BLAS.threads).utf8)).map { String(decoding: $0, as: UTF8.self) }
        if Set(counts).count == 1 { return "\(BLAS.threads) thread\(BLAS.threads == 1 ? "" : "s") per rank" }
        // Grouped by count, ranks as ranges ("1 on ranks 0–31, 2 on ranks 32–63"): one short line at any size.
        let groups = Dictionary(grouping: counts.indices, by: { counts[$0] }).sorted { $0.value[0] < $1.value[0] }.map { count, ranks in
            var spans: [String] = [], start = ranks[0], last = ranks[0]
            for r in ranks.dropFirst() + [Int.max] {
                if r == last + 1 { last = r; continue }
                spans.append(start == last ? "\(start)" : "\(start)–\(last)")
                (start, last) = (r, r)
            }
            return "\(count) on rank\(ranks.count == 1 ? "" : "s") \(spans.joined(separator: ", "))"
        }
        return "threads per rank differ (\(groups.joined(separator: "; ")); OPENBLAS_NUM_THREADS or --threads set per rank? "
            + "losses then differ from an even layout's in the last bits)"
    }

    @discardableResult
    public static func run(recipe asked: Recipe, comm: Communicator, quiet: Bool = false) -> Summary {
        // The steps num_train_epochs gives are known once the data is loaded (RunSetup).
        var recipe = asked
        let lead = comm.isCoordinator
        // SIGUSR1's handler is installed by `sft-dist train` at start-up (StopSignal); usr1:0
        // checks that, then the handler is installed here for callers of this function.
        FaultInjection.raiseStopSignal(step: 0, rank: comm.rank, size: comm.size)
        StopSignal.install()
        func say(_ s: String) { if lead && !quiet { print(s); fflush(stdout) } }
        // "done in" counts from here: loading, scoring passes, evaluations and the final save;
        // elapsed_s and tok/s count from the first step.
        let runStart = comm.wallTime()
        let outputs = RunOutputs(recipe.out)
        say("sft-dist: \(comm.size) rank\(comm.size == 1 ? "" : "s"), \(threadsLine(comm)), output in \(recipe.out)/")
        if let note = BLASKernel.replacementNote { say(note) }
        for note in recipe.notes { say(note) }
        if recipe.zero > 0 && comm.size == 1 {
            say("note: --zero \(recipe.zero) at 1 rank has nothing to shard (this rank keeps the whole optimizer state, as --zero 0); it shards under mpirun -n R")
        }

        Fatal.agree(lead ? RunOutputInputs.problem(recipe) : nil)
        Fatal.agree(lead ? RunOutputInputs.unwritable(recipe) : nil, code: Fatal.Code.output)
        NamedEvalSets.checkFiles(recipe)
        let setup = RunSetup.prepare(recipe: recipe, comm: comm, log: { say($0) })
        recipe = setup.recipe
        let evalSets = NamedEvalSets.load(setup)
        // A template lays out {messages} rows; data with none (what the model trains on, the
        // held-out set, --eval-data) has nothing for it to do, though the log said "chat
        // template: llama3 (as requested)".
        let messages = setup.trainsOnMessages || setup.heldOut.report.conversations > 0
            || evalSets.datasets.contains { $0.report.conversations > 0 }
        if recipe.deliberate(Recipe.declared.chatTemplate) && recipe.resume == nil {
            Fatal.agree(ChatTemplateRecord.unusedTemplate("\(recipe.named(Recipe.declared.chatTemplate)) \(recipe.chatTemplate)", in: "the data",
                                                          rows: "prompt/completion rows are text; --prompts and --unlabelled none either",
                                                          drop: "it", hasMessages: messages))
        }
        // A loss-scope switch for a kind of row the data does not have would do nothing.
        if recipe.resume == nil {
            let k = Recipe.declared
            let sets = [setup.train, setup.heldOut] + evalSets.datasets
            let promptRows = sets.contains { $0.report.promptCompletionRows > 0 }
            // (A key a recipe file set for an objective a flag replaced is unused: recipe.yaml comments it.)
            func given(_ key: RecipeKey<Bool>) -> Bool { recipe.deliberate(key) && !recipe.switchedOff(key, by: k.objective) }
            let missing: (RecipeKey<Bool>, String)? = given(k.assistantOnlyLoss) && !messages ? (k.assistantOnlyLoss, "{messages}")
                : given(k.completionOnlyLoss) && !promptRows ? (k.completionOnlyLoss, "{prompt, completion}") : nil
            Fatal.agree(missing.map { key, rows in "\(recipe.shown(key)) sets which tokens of \(rows) rows are trained, and the data has none: drop it" })
            let field = k.datasetTextField
            Fatal.agree(recipe.deliberate(field) && !sets.contains { $0.report.textRows > 0 }
                        ? "\(recipe.named(field)) \(recipe.datasetTextField) names the field of plain-text rows, and the data has none: drop it" : nil)
        }
        // The split can round to no row (heldout_fraction 0.05 of 8 rows): nothing to evaluate,
        // as with heldout_fraction 0, which Recipe.validate refuses these flags for.
        if setup.evaluatedHeldOutCount == 0 && evalSets.isEmpty && recipe.resume == nil {
            let k = Recipe.declared
            // (--eval-every 0 says what happens anyway, and scripts pass it to turn evaluation off.)
            let key: (any AnyRecipeKey)? = recipe.evalEvery != 0 && recipe.deliberate(k.evalEvery) ? k.evalEvery
                : recipe.evalExamples > 0 && recipe.deliberate(k.evalExamples) ? k.evalExamples : nil
            Fatal.agree(key.map { "\(recipe.named($0)) acts on the held-out set, and the split of \(recipe.data) (heldout_fraction \(recipe.heldoutFraction) of \(setup.train.count) rows) leaves none: raise --heldout-fraction, give --heldout FILE or --eval-data NAME=FILE, or drop it" })
        }
        let model = setup.model
        for (name, data) in zip(evalSets.names, evalSets.datasets) {   // rows cut or left out, as for --data
            if !data.report.skippedLines.isEmpty { say("--eval-data \(name): " + data.report.summary) }   // skip_bad_lines counts them
            if let note = RunSetup.lengthNote(data.report, recipe: recipe, context: model.maxSequenceLength) {
                say("note: --eval-data \(name): " + note.dropFirst("note: ".count))
            }
        }
        say(String(format: "model: %@ (%.2f M parameters), objective: %@, %d %@ of %d %@",
                   recipe.model, Double(model.parameters.parameterCount) / 1e6, setup.objective.name,
                   recipe.steps, recipe.steps == 1 ? "step" : "steps", recipe.batchSize,
                   (setup.objective.requirements.pairs ? String(setup.objective.requirements.pairUnit.dropLast()) : "example") + (recipe.batchSize == 1 ? "" : "s")))
        if let line = recipe.methodsLine { say(line) }
        if recipe.warmupSteps > recipe.steps {
            // A shortened run (--steps 3 under the default 20 warmup steps) never reaches its lr.
            let last = LRSchedule(kind: recipe.schedule, peak: Float(recipe.lr), warmupSteps: recipe.warmupSteps,
                                  totalSteps: recipe.steps, minRatio: Float(recipe.minLRRatio)).lr(at: recipe.steps - 1)
            say(String(format: "note: warmup_steps %d ≥ steps %d: the learning rate only rises, to %.2e at the last step (lr %.2e); lower --warmup-steps to reach and decay from it",
                       recipe.warmupSteps, recipe.steps, last, recipe.lr))
        }
        // An interval past the run's last step acts never: said, as the warmup above (a job script's
        // --save-every 500 on a 200-step run wrote no checkpoint, without a word).
        if recipe.saveEvery > recipe.steps {
            say("note: save_every \(recipe.saveEvery) > steps \(recipe.steps): no checkpoint falls due in this run (SIGUSR1 still writes one; the final model is saved at its end); lower --save-every to checkpoint it")
        }
        if recipe.evalEvery > recipe.steps {
            say("note: eval_every \(recipe.evalEvery) > steps \(recipe.steps): no evaluation falls due during this run (only those --eval-every 0 makes, at its start and end)")
        }
        // --self-train or --objective spin: the model's own answers in the batch (Training/SelfTraining/); nil without them.
        // (Recipe.validate has refused a selector beside them: it would never run.)
        let selfTraining = SelfTrainSetup.producer(setup: setup, comm: comm)
        let trainer = Trainer(setup: setup, comm: comm, producer: selfTraining, show: { say($0) })
        (trainer.source as? SPINProducer)?.opponent = trainer.oldPolicy
        // Said once the scored rows have been read (Trainer builds the producer): a run they
        // refuse printed this warning above its error.
        if comm.isCoordinator && recipe.scoredData && setup.heldOut.count == 0 && (recipe.heldout != nil || recipe.heldoutFraction > 0) {
            StandardError.write("sft-dist: warning: no held-out scored row has a positive score, so nothing is evaluated (give --heldout with right answers, or a larger --heldout-fraction)\n")
        }
        if let selecting = setup.objective as? ExcessLossSelecting, selecting.scores == .online, recipe.refModel == nil {
            say("note: \(setup.objective.name) scores=online without --ref-model: the reference is the initial weights, so every score is 0 at the first step (every token kept) and later ones are ℓ_θ − ℓ_θ₀")
        }
        // A step's batch is drawn from the epoch's order and, past its end, the next epoch's: more
        // rows than there are repeat rows within one step (TRL's dataloader gives the rows left).
        let rows = setup.train.examples.count
        if recipe.numTrainEpochs == 0 && recipe.batchSize > rows && recipe.selection == "none" && recipe.selfTrain == "none"
            && !setup.objective.requirements.rollouts && !setup.objective.requirements.pairs {
            say("note: batch_size \(recipe.batchSize) is more than the \(rows) training row\(rows == 1 ? "" : "s"): each step takes rows more than once (TRL's last batch of an epoch holds only the rows left: --num-train-epochs trains so)")
        }
        if let line = setup.model.dropoutNote { say("note: --model \(recipe.model): " + line) }
        if let line = (trainer.source as? RolloutProducer)?.promptNote { say(line) }
        if let line = (trainer.source as? RolloutProducer)?.evaluationSummary { say(line) }
        trainer.clearGradientsInUpdate = true   // nothing reads the gradient after a step here
        // Before metrics.jsonl is opened: a resume trims it to the checkpoint's step, then appends.
        let checkpoints = Checkpointer(setup: setup, components: trainer.components, comm: comm, log: { say($0) })
        checkpoints.selectionReference = (trainer.source as? SelectionProducer)?.reference
        checkpoints.rewardModels = trainer.rewardModels
        // Under dpo the held-out pairs, both answers: the evaluation reads the rejected ones too.
        checkpoints.evaluatedSets = [("", setup.evaluatedHeldOut.examples)] + evalSets.evaluatedExamples
        // An existing output directory is locked before resume (which trims its metrics.jsonl):
        // one another run is writing is refused untouched. A new one is made after resume.
        Fatal.agree(lead && FileManager.default.fileExists(atPath: recipe.out) ? OutputLock.acquire(recipe.out) : nil, code: Fatal.Code.output)
        Fatal.agree(lead ? checkpoints.previousRunProblem() : nil)
        let resumed = checkpoints.resume()
        // After resume: a refused checkpoint leaves the run directory as it was.
        Fatal.agree(lead ? OutputLock.acquire(recipe.out) : nil, code: Fatal.Code.output)
        // The passes before the first step, after the resume check: --precompute-ref-log-probs (dpo,
        // kto) scores the pairs or rows, then the reference goes (the checkpointer keeps the checksum
        // it took at the start); token-clean / forgetting, scores=fixed, score the training set (the
        // model still holds the initial weights) unless the checkpoint holds the scores; a2po's stage 1
        // finds V* of every prompt from the reference's samples, or reads them from the checkpoint.
        // A stop signal during any of them ends the run there (ScoringStopped).
        let optimalValues = (trainer.source as? RolloutProducer).flatMap { p in p.optimalValues.map { (p, $0) } }
        if optimalValues != nil, let note = recipe.a2poNote(setup.objective) { say(note) }
        let scoredNow: Bool, estimated: Bool
        do throws(ScoringStopped) {
            let stop = { StopSignal.agreed(comm) }
            try trainer.precomputeReferenceIfNeeded(evaluatedPairs: evalSets.sets.compactMap(\.pairs), stop: stop)
            scoredNow = try trainer.scoreTokenLabelsIfNeeded(stop: stop)
            estimated = try trainer.estimateOptimalValuesIfNeeded(stop: stop)
        } catch {
            return stopped(scoring: error, resumed: resumed, recipe: recipe, lead: lead,
                           summary: Summary(firstLoss: .nan, lastLoss: .nan, before: nil, after: nil,
                                            seconds: 0, outputDirectory: recipe.out))
        }
        if let labels = trainer.tokenLabels {
            let share = String(format: "%d kept (%.1f %%), score threshold %.4g", labels.kept, 100 * Double(labels.kept) / Double(max(labels.scored, 1)), labels.threshold)
            say(scoredNow ? "\(setup.objective.name): scored the training set's \(labels.scored) loss tokens once (initial weights against --ref-model): \(share)"
                          : "\(setup.objective.name): the training set's \(labels.scored) token scores from the checkpoint: \(share)")
        }
        if let (producer, values) = optimalValues {
            let kept = producer.prompts.count, all = producer.allPrompts.count, mean = (values.training ?? []).reduce(0.0) { $0 + Double($1) } / Double(max(all, 1))
            say("\(setup.objective.name): V* of \(all) training and \(producer.evaluationPrompts.count) held-out prompts "
                + (!values.restored ? "from \(values.samples) reference sample\(values.samples == 1 ? "" : "s") each (stage 1)"
                   : estimated ? "from the checkpoint, the held-out prompts' from \(values.samples) reference sample\(values.samples == 1 ? "" : "s") each" : "from the checkpoint")
                + String(format: ", the training prompts' mean %.4g; ", mean) + (values.filterAllIncorrect ? "\(kept) of \(all) training prompts kept (filter_all_incorrect drops those whose samples all scored 0)" : "every training prompt kept (filter_all_incorrect false)"))
        }
        if lead {
            // A new run into a finished run's --out replaces its model and metrics (README,
            // Resume): said once, where it happened without a word.
            if resumed == nil, ["config.json", "adapter_config.json"].contains(where: { FileManager.default.fileExists(atPath: outputs.model + "/" + $0) }) {
                StandardError.write("sft-dist: note: \(outputs.model)/ is an earlier run's, which this run replaces at its end, as it replaced that run's \(outputs.metrics) (use another --out to keep them)\n")
            }
            for stale in outputs.staleModels(of: recipe) {
                StandardError.write("sft-dist: warning: \(stale) is an earlier run's, which this run does not replace: it will not match \(outputs.model) (remove it, or use another --out)\n")
            }
            for stale in outputs.staleFiles(of: recipe) {
                StandardError.write("sft-dist: warning: \(stale) is an earlier run's, which this run does not write (remove it, or use another --out)\n")
            }
        }
        // A new self-training run, or one continuing another run's checkpoint (--out's round
        // files are --out's earlier run's, not the checkpoint's): --out's round files go.
        if recipe.selfTrain != "none" && (resumed == nil || resumed!.otherRun) {
            var problem: String? = nil
            if lead {
                do { try outputs.clearRounds() } catch { problem = "\(outputs.selfTrain): cannot remove an earlier run's round files (\(error))" }
                if let r = resumed, r.otherRun {
                    say("resume: \(outputs.selfTrain)/ keeps only this run's rounds from here; those before step \(r.step) are beside the checkpoint's run (\(URL(fileURLWithPath: r.directory).deletingLastPathComponent().deletingLastPathComponent().path)/self-train)")
                }
            }
            Fatal.agree(problem, code: Fatal.Code.output)
        }
        Fatal.agree(lead ? Recipe.write(recipe) : nil, code: Fatal.Code.output)
        // The built-in data's files, for the user to read (every rank trains on them from memory).
        Fatal.agree(lead ? RunSetup.prepareOutput(recipe) : nil, code: Fatal.Code.output)
        let metrics = Fatal.collective(code: Fatal.Code.output) {
            try MetricsLog(path: lead ? outputs.metrics : nil, append: resumed != nil)
        }

        // A run that stops on a non-finite loss still leaves its plot of the steps before.
        Fatal.beforeTrainingAbort = lead ? { _ = writePlot(recipe, sets: evalSets.names) } : nil
        var lastNamedEval: [String: Double] = [:]   // the named sets' fields of the latest evaluation
        // TRL's num_tokens: left out of the rows when a resumed run cannot know its start; an
        // evaluation's row carries it as eval_num_tokens, as TRL's does.
        var numTokens: Int? = resumed == nil ? 0 : resumed?.numTokens
        func evaluate(_ label: String, step: Int) -> EvalResult? {
            guard setup.evaluatedHeldOutCount > 0 || !evalSets.isEmpty else { return nil }
            var options = EvalOptions()
            options.microBatch = recipe.microBatchSize
            options.generationExamples = recipe.generationExamples(setup.objective)
            options.maxNewTokens = recipe.maxNewTokens
            // A long evaluation (a large model's rollouts or answers) says how far it is, after 5 s.
            if lead && !quiet {
                let shown = EvalProgress(label: "eval (\(label))", show: say)
                options.progress = { shown.update($0, done: $1, total: $2) }
            }
            // The objective's loss as TRL's trainers evaluate theirs: dpo's on the held-out pairs, kto's
            // on the held-out labelled rows, grpo's and rloo's on rollouts of the held-out prompts, gkd's on the held-out rows.
            let r = setup.evaluatedHeldOutCount == 0 ? nil : Fatal.collective {
                try Evaluator.evaluate(model: model, tokenizer: setup.tokenizer, examples: setup.heldOut.examples, comm: comm,
                                       options: options, objective: setup.heldOutPairs.map(trainer.evaluatePairs) ?? trainer.evaluateUnpaired(setup.heldOutLabelled)
                                           ?? trainer.evaluateRollouts(step: step, progress: options.progress) ?? trainer.evaluateDistillation(setup.heldOut))
            }
            if let r { say("eval (\(label)): " + r.summary) }
            // Each named set its own report (they went 11 s and more without a line).
            let named = evalSets.evaluate(model: model, tokenizer: setup.tokenizer, comm: comm, options: options,
                                          progress: { name in
                                              guard lead && !quiet else { return nil }
                                              let shown = EvalProgress(label: "eval (\(label)) \(name)", show: say)
                                              return { shown.update($0, done: $1, total: $2) }
                                          },
                                          evaluatePairs: trainer.evaluatePairs)
            for (name, result) in named { say("eval (\(label)) \(name): " + result.summary) }
            let namedFields = NamedEvalSets.fields(named)
            lastNamedEval = NamedEvalSets.numbers(namedFields)
            metrics.write([("step", step)] + (r?.fields ?? []) + namedFields + (numTokens.map { [("eval_num_tokens", $0 as Any)] } ?? []))
            return r
        }

        // -1 (the default): four evaluations during the run, so loss.svg shows a held-out curve.
        // Every ⌈steps/5⌉ steps: with steps/4 the fourth fell on the last step, where the final
        // evaluation stands in for it (1000 steps gave 250, 500, 750 and the final one).
        // Passes over the training rows at the end of each step (TrainEpochs.epoch).
        let epochRows = TrainEpochs.unsupported(recipe, objective: setup.objective) == nil ? TrainEpochs.rows(setup.train, objective: setup.objective) : nil
        let evalEvery = recipe.evalEvery >= 0 ? recipe.evalEvery : max(1, (recipe.steps + 4) / 5)
        let before = resumed == nil ? evaluate("before training", step: 0) : nil
        let progress = ProgressLine(total: recipe.steps, every: recipe.logEvery, enabled: lead && !quiet, firstStep: resumed?.step ?? 0,
                                    elapsedBefore: resumed?.elapsed ?? 0)
        let start = comm.wallTime()
        var losses: [Double] = resumed?.losses ?? []
        var tokensSeen = 0
        // Training time only: the tok/s of the progress and final lines left evaluations out of
        // the tokens but not out of the time (4× below the steps' own tokens_per_s with three
        // --eval-data sets).
        var trainSeconds = 0.0
        let previousElapsed = resumed?.elapsed ?? 0
        for step in (resumed?.step ?? 0)..<recipe.steps {
            let t0 = comm.wallTime()
            let r = trainer.step(step)
            let dt = comm.wallTime() - t0
            tokensSeen += r.tokens
            trainSeconds += dt
            losses.append(r.loss)
            var fields: [(String, Any)] = [("step", step + 1), ("loss", r.loss), ("learning_rate", Double(r.lr)),
                                           ("grad_norm", r.gradNorm), ("tokens", r.tokens), ("loss_tokens", r.lossTokens),
                                           ("tokens_per_s", Double(r.tokens) / max(dt, 1e-9)),
                                           ("elapsed_s", previousElapsed + comm.wallTime() - start)]
            numTokens = numTokens.map { $0 + r.sequenceTokens }
            if let numTokens { fields.append(("num_tokens", numTokens)) }
            checkpoints.numTokens = numTokens
            if let epochRows {
                fields.append(("epoch", TrainEpochs.epoch(afterStep: step + 1, rows: epochRows, batchSize: recipe.batchSize,
                                                          shortLastBatch: TrainEpochs.endsEpochsShort(recipe))))
            }
            fields += r.diagnostics.map { ($0.0, $0.1 as Any) }
            let produced = trainer.producerMetrics(stepSeconds: dt)
            fields += produced
            if r.skipped { fields.append(("skipped", true)) }
            metrics.write(fields)
            let elapsed = comm.wallTime() - start
            progress.update(step: step, loss: r.loss, lr: Double(r.lr),
                            tokensPerSecond: Double(tokensSeen) / max(trainSeconds, 1e-9), elapsed: elapsed,
                            extra: trainer.progressExtra(produced))
            FaultInjection.perturbReplica(model.parameters, step: step + 1, rank: comm.rank, size: comm.size)
            FaultInjection.failMPICall(comm, step: step + 1)
            FaultInjection.failEveryRank(step: step + 1)
            FaultInjection.raiseStopSignal(step: step + 1, rank: comm.rank, size: comm.size)
            if recipe.checksumEvery > 0 && (step + 1) % recipe.checksumEvery == 0 {
                checkReplicas(model, trainable: trainer.trainable, comm: comm, step: step + 1)
            }
            if evalEvery > 0 && (step + 1) % evalEvery == 0 && step + 1 < recipe.steps {
                progress.finishLine()
                _ = evaluate("step \(step + 1)", step: step + 1)
            }
            checkpoints.lastLoss = r.loss.isFinite ? r.loss : nil
            let saved = checkpoints.afterStep(step + 1)
            if step + 1 < recipe.steps && StopSignal.agreed(comm) {
                if !saved { checkpoints.save(stepsDone: step + 1) }
                progress.finishLine()
                return stopped(after: step + 1, checkpoint: checkpoints.path(stepsDone: step + 1), recipe: recipe, sets: evalSets.names, lead: lead,
                               summary: Summary(firstLoss: losses.first ?? .nan, lastLoss: losses.last ?? .nan, before: before, after: nil,
                                                seconds: comm.wallTime() - start, outputDirectory: recipe.out))
            }
        }
        progress.finishLine()
        checkReplicas(model, trainable: trainer.trainable, comm: comm, step: recipe.steps)
        let seconds = comm.wallTime() - start
        let after = evaluate("after training", step: recipe.steps)

        Fatal.agree(lead ? saveFinal(setup, to: outputs.model, steps: recipe.steps) : nil, code: Fatal.Code.output)
        saveAverages(setup, trainer: trainer, lead: lead)
        // The plot is an output like the model, written even with --quiet.
        Fatal.beforeTrainingAbort = nil
        Fatal.agree(lead ? writePlot(recipe, sets: evalSets.names) : nil, code: Fatal.Code.output)
        if lead && !quiet {
            // A run resumed at its last step (metrics.jsonl gone) trained nothing: no "nan → nan".
            // The first and last finite losses: a last step skipped (nan_policy: skip) said "→ -nan".
            if let first = losses.first(where: \.isFinite), let last = losses.last(where: \.isFinite) {
                say("loss \(ProgressLine.sparkline(losses)) \(ProgressLine.value(first)) → \(ProgressLine.value(last))")
            } else if losses.isEmpty {
                say("no training step ran (the run was already at step \(recipe.steps) of \(recipe.steps))")
            } else {
                say("loss: no step had a finite loss (every one was skipped, nan_policy: skip)")
            }
            // A resumed run evaluated "before" in the run it continues: metrics.jsonl has it.
            let beforeRow = NamedEvalSets.beforeRow(metricsPath: outputs.metrics)
            if let b = before?.accuracy ?? beforeRow?["eval_accuracy"], let a = after?.accuracy {
                say(String(format: "exact-match accuracy on held-out: %.1f%% → %.1f%%", b * 100, a * 100))
            }
            for s in after?.samples ?? [] {
                // Quoted as typed (debugDescription showed "don't" as "don\'t").
                func q(_ t: String) -> String { MessageText.quoted(t, max: 200) }
                say("  \(q(s.prompt)) → \(q(s.got)) (expected \(q(s.expected)))")
            }
            if trainer.skippedSteps > 0 { say("skipped \(trainer.skippedSteps) steps with non-finite values (nan_policy: skip)") }
            let also = outputs.otherModels(of: recipe).map { $0 + "/" }  // --ema, LoRA on a preset, --merge-lora
            // The whole run (evaluations and saves included; elapsed_s's part before a resume);
            // a resumed run says this process's share too.
            let total = comm.wallTime() - runStart
            let notes = [resumed == nil ? nil : "\(ProgressLine.clock(total)) since the resume",
                         tokensSeen > 0 ? "\(ProgressLine.human(Double(tokensSeen) / max(trainSeconds, 1e-9))) tok/s in training steps" : nil].compactMap { $0 }
            let took = ProgressLine.clock(previousElapsed + total) + (notes.isEmpty ? "" : " (" + notes.joined(separator: "; ") + ")")
            say(String(format: "done in %@; model in %@/%@, metrics in %@, plot in %@",
                       took, outputs.model, also.isEmpty ? "" : " (also " + also.joined(separator: ", ") + ")",
                       outputs.metrics, outputs.plot))
            // Last: before → after per named set (a resumed run finds "before" in metrics.jsonl).
            for line in NamedEvalSets.retentionTable(names: evalSets.names, before: beforeRow, after: lastNamedEval,
                                                          pairObjective: setup.objective.name) { say(line) }
        }
        return Summary(firstLoss: losses.first ?? .nan, lastLoss: losses.last ?? .nan, before: before, after: after,
                       seconds: seconds, outputDirectory: recipe.out)
    }

    /// Replicas must be bit-identical; a difference means a rank diverged (bad memory, a
    /// non-deterministic kernel, a bug) and continuing would waste the job. Only what the
    /// steps update is hashed: frozen values are never written.
    static func checkReplicas(_ model: LanguageModel, trainable: TrainableSet, comm: Communicator, step: Int) {
        guard comm.size > 1 else { return }
        let sum = trainable.checksum(model.parameters)
        let all = comm.allgather(withUnsafeBytes(of: sum) { Array($0) })
        let sums = all.map { $0.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } }
        if let bad = sums.firstIndex(where: { $0 != sums[0] }) {
            // Every rank sees the same gathered sums; the coordinator's message is the one printed.
            Fatal.agree(comm.isCoordinator ? "replicas diverged at step \(step): the parameter checksum of rank \(bad) differs from rank 0's" : nil,
                        code: Fatal.Code.training)
        }
    }
}
