import ArgumentParser
import Distributed
import Foundation
import Models
import Training

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Held-out loss and perplexity; generation accuracy with a scorer (pass@1, pass@k), mean reward, length, calibration.",
        discussion: """
        Work is sharded over ranks (run under mpirun to parallelise); the numbers agree across \
        rank counts up to float rounding (each rank batches its own shard). Scorers: exact, numeric (last number, --scorer-arg tolerance=1e-6), \
        contains, regex (--scorer-arg pattern=…), task (the built-in tasks' own solver, \
        no reference needed: scores rule variants and noisy sets against the truth), command (--scorer-cmd "prog args": JSONL on \
        stdin, one score per line on stdout).
        """)

    @Option(help: "Model directory (or a preset, for a baseline).") var model: String
    @Option(help: "A LoRA adapter directory (peft format) to apply to --model, its base.") var adapter: String?
    @Option(help: "JSONL to evaluate on.") var data: String
    // Flags a check below refuses when they would do nothing are optional: given at their
    // default value they are still given (the effective values are below).
    @Option(name: .customLong("scorer"), help: "Scorer: exact, numeric, contains, regex, task or command (default: exact).") var scorerFlag: String?
    @Option(name: .customLong("scorer-arg"), help: "Scorer parameter key=value (repeatable).") var scorerArg: [String] = []
    @Option(name: .customLong("scorer-cmd"), help: "External scorer command (with --scorer command).") var scorerCmd: String?
    @Option(Settings.scorerTimeout, default: "60") var scorerTimeoutFlag: Double?
    static let examplesSetting = Settings.generationExamples.named("examples")
    @Option(examplesSetting) var examples = 200
    @Option(Settings.samples) var samples = 0
    @Option(name: .customLong("pass-k"), help: "k values for pass@k, comma-separated (≤ --samples; default: 1).") var passKFlag: String?
    @Option(Settings.temperature, default: "1") var temperatureFlag: Float?
    @Option(Settings.topP, default: "1") var topPFlag: Float?
    @Option(Settings.seed.named("seed", help: "Seed for sampled answers (temperature > 0).")) var seed: UInt64 = 0
    @Option(Settings.microBatchSize) var microBatchSize = 8
    @Option(Settings.maxLength.named("max_length", help: "Maximum tokens per example, prompt and answer (longer rows are cut for the loss); the generated answer's length is --max-new-tokens.")) var maxLength = 1024
    @Option(Settings.maxNewTokens, default: "16") var maxNewTokensFlag: Int?
    @Option(name: .customLong("chat-template"), help: "auto (the model's own), chatml, llama3 or plain.") var chatTemplate = "auto"
    @Option(name: .customLong("dataset-text-field"), help: "The field of plain-text rows (TRL's dataset_text_field).") var datasetTextField = JSONLReader.defaultTextField
    @Flag(inversion: .prefixedNo, help: "Loss over the completion of {prompt, completion} rows only (--no-completion-only-loss: every token), as train's flag.")
    var completionOnlyLoss = true
    @Flag(inversion: .prefixedNo, help: "Loss over the assistant turns of {messages} rows only (--no-assistant-only-loss: every token), as train's flag.")
    var assistantOnlyLoss = true
    @Flag(help: "Print one JSON object instead of a table.") var json = false
    @Option(help: "Write the result, one JSON object as --json prints it, to FILE (whole or not at all) instead of printing it: under mpirun a failed write of standard output (a full disk behind `>`) is not reported, mpirun exits 0.") var out: String?
    @Option(Settings.threads) var threads: Int?
    @Option(Settings.watchdog) var watchdog = 300.0

    var scorer: String { scorerFlag ?? "exact" }
    var scorerTimeout: Double { scorerTimeoutFlag ?? 60 }
    var passK: String { passKFlag ?? "1" }
    var temperature: Float { temperatureFlag ?? 1 }
    var topP: Float { topPFlag ?? 1 }
    var maxNewTokens: Int { maxNewTokensFlag ?? 16 }

    func validate() throws {
        try Settings.scorerTimeout.check(scorerTimeout)
        try Self.examplesSetting.check(examples)
        try Settings.samples.check(samples)
        try Settings.temperature.check(temperature)
        try Settings.topP.check(topP)
        try Settings.microBatchSize.check(microBatchSize)
        try Settings.maxLength.check(maxLength)
        try Settings.maxNewTokens.check(maxNewTokens)
        try Settings.threads.check(threads)
        try Settings.watchdog.check(watchdog)
        // Settings that would do nothing are refused, not ignored (--seed stays free: scripts
        // pass one always). Generation is off with --examples 0; sampling needs --samples N.
        if examples == 0 {
            let set = [("--samples", samples != 0), ("--pass-k", passKFlag != nil), ("--scorer", scorerFlag != nil),
                       ("--scorer-arg", !scorerArg.isEmpty), ("--scorer-cmd", scorerCmd != nil), ("--scorer-timeout", scorerTimeoutFlag != nil), ("--max-new-tokens", maxNewTokensFlag != nil)]
            if let (flag, _) = set.first(where: { $0.1 }) {
                throw RecipeError("\(flag) acts on the generated answers, and --examples 0 generates none: drop it or give --examples N")
            }
        }
        if scorer != "command", let (flag, _) = [("--scorer-cmd", scorerCmd != nil), ("--scorer-timeout", scorerTimeoutFlag != nil)].first(where: { $0.1 }) {
            throw RecipeError("\(flag) is for the program of --scorer command; with --scorer \(scorer) it would have no effect: add --scorer command")
        }
        // --temperature 0 and --top-p 1 (no nucleus cut) without --samples stay free: they say what
        // greedy answers are.
        if samples == 0, let (flag, _) = [("--temperature", temperatureFlag != nil && temperature != 0), ("--top-p", topP != 1), ("--pass-k", passKFlag != nil)].first(where: { $0.1 }) {
            throw RecipeError("\(flag) acts on sampled answers (--samples N for pass@k); without --samples the answers are greedy and \(flag) has no effect")
        }
        // Greedy draws are the greedy answer N times: pass@k would be the greedy exact match.
        if samples > 0 && temperature == 0 {
            throw RecipeError("--samples \(samples) at --temperature 0 draws the greedy answer \(samples) times, so pass@k would only repeat the greedy exact match: give --temperature T > 0 (default 1), or drop --samples")
        }
        let ks = passK.split(separator: ",", omittingEmptySubsequences: false).map { Int($0) }
        if samples > 0 && (ks.isEmpty || ks.contains { $0 == nil || $0! < 1 || $0! > samples }) {
            throw RecipeError("--pass-k values must be integers between 1 and --samples (\(samples)) (got \(RecipeError.quote(passK)))")
        }
    }

    func run() throws {
        let comm = Runtime.start(threads: threads, watchdog: watchdog)
        SameInputs.check(settings: [("scorer", scorer), ("scorer-arg", scorerArg.joined(separator: " ")), ("scorer-cmd", scorerCmd ?? ""),
                                    ("scorer-timeout", "\(scorerTimeout)"), ("examples", "\(examples)"), ("samples", "\(samples)"),
                                    ("pass-k", passK), ("temperature", "\(temperature)"), ("top-p", "\(topP)"), ("seed", "\(seed)"),
                                    ("micro-batch-size", "\(microBatchSize)"), ("max-length", "\(maxLength)"),
                                    ("completion-only-loss", "\(completionOnlyLoss)"), ("assistant-only-loss", "\(assistantOnlyLoss)"),
                                    ("dataset-text-field", datasetTextField),
                                    ("max-new-tokens", "\(maxNewTokens)"), ("chat-template", chatTemplate), ("adapter", adapter == nil ? "no" : "yes")])
        Runtime.checkOutputFile(out, inputs: [("--data", data)], model: model, adapter: adapter)
        let (m, tok) = Fatal.collective { try AdapterDirectory.loadModel(model, adapter: adapter) }
        SameInputs.check(Runtime.modelLabel(model, adapter: adapter), model: m, tokenizer: tok)
        Runtime.noteAdapter(model: model, adapter: adapter, loaded: m, comm: comm)
        if examples > 0 {
            Runtime.noteGenerationDefaults(m, label: model, sampling: "eval's answers are greedy"
                + (samples > 0 ? " and its --samples draw at --temperature \(temperature), --top-p \(topP)" : ""), comm: comm)
        }
        var options = EvalOptions()
        options.scorer = Fatal.collective {
            var args = try parseKeyValues(scorerArg, flag: "--scorer-arg")
            if let scorerCmd { args["cmd"] = scorerCmd; args["timeout"] = "\(scorerTimeout)" }
            return try ScorerRegistry.make(name: scorer, args: args)
        }
        Runtime.noteSlidingWindow(m, maxLength: maxLength, comm: comm)
        let loaded = Fatal.collective {
            try EvaluatedData.load(data, tokenizer: tok, maxLength: maxLength, context: m.maxSequenceLength,
                                   template: try ChatTemplate.resolve(chatTemplate, tokenizer: tok, label: "--chat-template").template,
                                   lossScope: LossScope(completionOnly: completionOnlyLoss, assistantOnly: assistantOnlyLoss),
                                   textField: datasetTextField)
        }
        // kto's labelled rows: an undesirable answer is no reference for the loss or exact match.
        let (set, undesirable) = UnpairedReader.withoutUndesirable(loaded, path: data)
        if undesirable > 0 {
            Fatal.agree(set.count == 0 ? "--data \(data): every row is labelled false (an undesirable answer, kto's data), and eval reads answers as references: give rows with desirable answers" : nil)
            if comm.isCoordinator {
                StandardError.write("sft-dist: note: \(undesirable) row\(undesirable == 1 ? "" : "s") of \(data) labelled false (undesirable answers, kto's data) left out: the loss and exact match read the other \(set.count) as references\n")
            }
        }
        Runtime.checkLoaded(set, from: data, comm: comm, chatTemplate: chatTemplate, tokenizer: tok, completionOnlyLoss: completionOnlyLoss,
                            assistantOnlyLoss: assistantOnlyLoss, textField: datasetTextField)
        let emptyPrompts = set.examples.filter { $0.answer != nil && tok.holdsNoText($0.ids[0..<$0.promptLength]) }
        if examples > 0, comm.isCoordinator, let first = emptyPrompts.first {
            StandardError.write("sft-dist: note: \(emptyPrompts.count) row\(emptyPrompts.count == 1 ? " has" : "s have") an empty prompt (first: \(first.source)): scored for loss, not generated (nothing to continue)\n")
        }
        if examples > 0, comm.isCoordinator, let note = set.textRowsNote() {
            StandardError.write("sft-dist: " + note + "\n")
        }
        options.microBatch = microBatchSize; options.generationExamples = examples
        options.maxNewTokens = maxNewTokens; options.samples = samples
        options.passK = samples > 0 ? passK.split(separator: ",").compactMap { Int($0) } : []
        options.temperature = temperature; options.topP = topP; options.seed = seed
        if comm.isCoordinator {
            let progress = EvalProgress { printError($0) }
            options.progress = { progress.update($0, done: $1, total: $2) }
        }
        let r = Fatal.collective { try Evaluator.evaluate(model: m, tokenizer: tok, examples: set.examples, comm: comm, options: options) }
        // The loss is global (the same on every rank); rank 0 says it.
        Fatal.agree(r.loss.isFinite || !comm.isCoordinator ? nil :
                        "--model \(model): the loss on \(data) is \(r.loss.isNaN ? "nan" : "\(r.loss)"): its weights give non-finite values (a run that diverged?)")
        let resultJSON = MetricsLog.json([("examples", set.count), ("scorer", scorer)] + r.fields)
        if let out {
            Fatal.agree(comm.isCoordinator ? writeAtomically(resultJSON + "\n", to: out) : nil, code: Fatal.Code.output)
        } else if comm.isCoordinator {
            if json {
                print(resultJSON)
            } else {
                print("examples          \(set.count)")
                print(String(format: "loss              %.4f", r.loss))
                print(String(format: "perplexity        %.3f", r.perplexity))
                print(String(format: "token accuracy    %.2f%%", r.tokenAccuracy * 100))
                print(String(format: "entropy           %.4f", r.entropy))
                if let g = r.generation {
                    print(String(format: "accuracy (%@)%@ %.2f%% pass@1 of %d greedy", scorer,
                                 String(repeating: " ", count: max(0, 7 - scorer.count)), g.passAt1 * 100, g.count))
                    for (k, v) in g.passAtK.sorted(by: { $0.key < $1.key }) {
                        print(String(format: "pass@%-3d          %.2f%% (%d samples per prompt)", k, v * 100, samples))
                    }
                    print(String(format: "mean reward       %.4f", g.meanReward))
                    print(String(format: "mean length       %.1f tokens", g.meanLength))
                    print(String(format: "calibration (ECE) %.4f", g.ece))
                }
            }
        }
        Runtime.finish()
    }
}

func parseKeyValues(_ pairs: [String], flag: String) throws -> [String: String] {
    var out: [String: String] = [:]
    for kv in pairs {
        let parts = kv.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty else { throw RecipeError("\(flag) \(RecipeError.quote(kv)): expected key=value") }
        out[parts[0]] = parts[1]
    }
    return out
}
