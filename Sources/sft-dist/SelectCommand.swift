import ArgumentParser
import Distributed
import Foundation
import Models
import Training

struct Select: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Offline data selection: keep a fraction of a JSONL dataset by a selector's scores.",
        discussion: """
        The scorers of --selection (uds, q-tuning, loss, learnability, random) over the whole \
        dataset, sharded over ranks; rank 0 writes the kept rows unchanged, in input order, and \
        one line of scores per example. --pool N selects within consecutive pools of N rows \
        (UDS's diversity queue carries over between them); the default is one pool.
        """)

    @Option(help: "Selector: uds, q-tuning, loss, learnability or random.") var method: String
    // .unconditional: "--keep -0.2" is the value, refused with its range (it said "Missing value").
    @Option(parsing: .unconditional, help: "Fraction of the rows to keep, in (0, 1].", transform: decimalFlag) var keep: Double
    @Option(help: "Input JSONL ({prompt, completion}, {messages} or {text} rows).") var data: String
    @Option(help: "Output JSONL: the kept rows.") var out: String
    @Option(help: "Scores JSONL (default: OUT with .scores.jsonl).") var scores: String?
    @Option(help: "Model directory or preset that scores.") var model = "default"
    @Option(help: "A LoRA adapter directory (peft format) to apply to --model, its base.") var adapter: String?
    @Option(name: .customLong("ref-model"), help: "Reference model directory (learnability).") var refModel: String?
    @Option(name: .customLong("method-arg"), help: "Selector parameter key=value (repeatable).") var methodArgs: [String] = []
    @Option(parsing: .unconditional, help: "Rows per selection pool (default: the whole dataset).") var pool: Int?
    @Option(Settings.maxLength) var maxLength = 1024
    @Option(name: .customLong("chat-template"), help: "auto (the model's own), chatml, llama3 or plain.") var chatTemplate = "auto"
    @Option(name: .customLong("dataset-text-field"), help: "The field of plain-text rows (TRL's dataset_text_field).") var datasetTextField = JSONLReader.defaultTextField
    @Flag(inversion: .prefixedNo, help: "Score the completion of {prompt, completion} rows only (--no-completion-only-loss: every token), as train's flag.")
    var completionOnlyLoss = true
    @Flag(inversion: .prefixedNo, help: "Score the assistant turns of {messages} rows only (--no-assistant-only-loss: every token), as train's flag.")
    var assistantOnlyLoss = true
    @Option(Settings.seed.named("seed", help: "Seed of a preset model's weights and of the selectors that draw (random, uds's sketch)."),
            default: "1234") var seedFlag: UInt64?
    var seed: UInt64 { seedFlag ?? 1234 }
    @Option(Settings.threads) var threads: Int?
    @Option(Settings.watchdog) var watchdog = 300.0

    func validate() throws {
        try Settings.maxLength.check(maxLength)
        try Settings.threads.check(threads)
        try Settings.watchdog.check(watchdog)
        guard keep > 0 && keep <= 1 else { throw ValidationError("--keep must be in (0, 1] (got \(keep))") }
        if let pool, !(1...100_000_000).contains(pool) { throw ValidationError("--pool must be an integer in 1…100000000 (got \(pool))") }
        guard method != "none" && SelectionRegistry.names.contains(method) else {
            throw ValidationError("--method must be one of \(SelectionRegistry.names.dropFirst().joined(separator: ", ")) (got \(method))")
        }
        // The seed draws a preset's random weights, random's rows and uds's sketch; a saved
        // model scored by loss, learnability or q-tuning reads none of it.
        if seedFlag != nil && !["random", "uds"].contains(method) && (adapter != nil || !ModelPresets.names.contains(model)) {
            throw ValidationError("--seed draws a preset model's weights and --method random's and uds's choices; --method \(method) on the model directory \(model) draws nothing: drop --seed")
        }
        // random reads no weights (only --model's tokenizer, for the rows' lengths): an adapter
        // was loaded and ignored, even one whose weights give NaN (a hostile review).
        if method == "random", let adapter {
            throw ValidationError("--adapter \(adapter) changes the model's weights, which --method random does not read (it draws rows by --seed): drop --adapter")
        }
    }

    func run() throws {
        let comm = Runtime.start(threads: threads, watchdog: watchdog)
        SameInputs.check(settings: [("method", method), ("keep", "\(keep)"), ("method-arg", methodArgs.joined(separator: " ")),
                                    ("pool", pool.map { "\($0)" } ?? "all"), ("max-length", "\(maxLength)"), ("chat-template", chatTemplate),
                                    ("seed", "\(seed)"), ("ref-model", refModel == nil ? "no" : "yes"), ("adapter", adapter == nil ? "no" : "yes"),
                                    ("completion-only-loss", "\(completionOnlyLoss)"), ("assistant-only-loss", "\(assistantOnlyLoss)"),
                                    ("dataset-text-field", datasetTextField)])
        Fatal.agree(ReplaceableOutput.emptyPathProblem([("--out", out), ("--scores", scores ?? Self.scoresPath(out))]))
        Fatal.agree(ReplaceableOutput.fileOutputsProblem(outputs: [("--out", out), ("--scores", scores ?? Self.scoresPath(out))],
                                                         inputs: [("--data", data)],
                                                         inputDirectories: [("--model", model)] + (adapter.map { [("--adapter", $0)] } ?? [])
                                                             + (refModel.map { [("--ref-model", $0)] } ?? [])),
                    code: Fatal.Code.output)
        var args: [String: String] = [:]
        for a in methodArgs {
            guard let eq = a.firstIndex(of: "=") else { Fatal.agree("--method-arg \(a): expected key=value"); return }
            let key = String(a[..<eq])
            // --keep is the budget; a key twice would silently keep the last.
            if key == "budget" { Fatal.agree("--method-arg \(a): --keep is the fraction kept (the selector's budget); drop --method-arg budget") }
            if args[key] != nil { Fatal.agree("--method-arg \(key) is given twice (\(key)=\(args[key]!) and \(a)); give each key once") }
            // Q-Tuning's token pruning acts on a training step's rows; select keeps whole rows, so
            // these were read, checked and ignored.
            if method == "q-tuning" && ["token_budget", "lambda"].contains(key) {
                Fatal.agree("--method-arg \(key): q-tuning's token pruning (token_budget, lambda) masks tokens of the rows a training step keeps (train --selection q-tuning); select keeps or drops whole rows, so it would have no effect: drop it")
            }
            args[key] = String(a[a.index(after: eq)...])
        }
        args["budget"] = "\(keep)"
        let (m, tok) = Fatal.collective {
            try adapter.map { try AdapterDirectory.loadModel(base: model, adapter: $0) } ?? RunSetup.loadModel(model, seed: seed, use: .inference)
        }
        SameInputs.check(Runtime.modelLabel(model, adapter: adapter), model: m, tokenizer: tok)
        Runtime.noteAdapter(model: model, adapter: adapter, loaded: m, comm: comm)
        // select's --model has a default, the preset `default`: its weights are random, so a
        // selector that reads the model's scores would rank the rows by chance, silently.
        if comm.isCoordinator && method != "random" && adapter == nil && ModelPresets.names.contains(model) {
            printError("sft-dist: note: --model \(model) is a preset with random weights (seed \(seed)): --method \(method) ranks the rows by an untrained model's scores; give a trained model directory as --model")
        }
        let limit = min(maxLength, m.maxSequenceLength)
        Runtime.noteSlidingWindow(m, maxLength: maxLength, comm: comm)
        let (selector, _) = Fatal.collective { () throws -> (CandidateSelector, keep: Int) in
            let context = SelectionRegistry.Context(batchSize: 1, pool: 1, seed: seed, maxLength: limit, vocabSize: m.vocabSize,
                                                    hasReference: refModel != nil)
            return try SelectionRegistry.make(name: method, args: args, context: context)!
        }
        if refModel != nil && selector.referenceScorer == nil {
            Fatal.agree("--ref-model is read by --method learnability (the reference model's loss); --method \(method) does not read it: drop --ref-model")
        }
        let reference = refModel.flatMap { path in
            selector.referenceScorer == nil ? nil : Fatal.collective { try ReferenceModel.load(path, like: m, tokenizer: tok) }
        }
        let set = Fatal.collective {
            try EvaluatedData.load(data, tokenizer: tok, maxLength: maxLength, context: m.maxSequenceLength,
                                   template: try ChatTemplate.resolve(chatTemplate, tokenizer: tok, label: "--chat-template").template,
                                   lossScope: LossScope(completionOnly: completionOnlyLoss, assistantOnly: assistantOnlyLoss),
                                   textField: datasetTextField)
        }
        if let reference, let refModel {
            SameInputs.check("--ref-model \(refModel)", architecture: reference)
            SameInputs.check("--ref-model \(refModel)", model: reference.parameters)
        }
        Runtime.checkLoaded(set, from: data, comm: comm, chatTemplate: chatTemplate, tokenizer: tok, completionOnlyLoss: completionOnlyLoss,
                            assistantOnlyLoss: assistantOnlyLoss, textField: datasetTextField)
        // round(keep · rows) = 0 wrote an empty file with exit 0, which training then refused.
        Fatal.agree(Int((keep * Double(set.count)).rounded()) > 0 ? nil :
                        "--keep \(keep) of \(set.count) row\(set.count == 1 ? "" : "s") of \(data) keeps none (round(keep · rows) = 0): nothing would be written; raise --keep")
        let r = OfflineSelection.run(selector: selector, fraction: keep, poolSize: pool, dataset: set, model: m, reference: reference,
                                     padId: tok.padId, seed: seed, comm: comm)
        // A model whose weights give NaN would rank rows by nothing (written as null) and exit 0.
        // Only NaN: a finite but extreme model's perplexity (q-tuning's exp of the mean NLL)
        // may overflow to inf, which still ranks.
        let bad = comm.isCoordinator ? r.scores.indices.first { i in r.scores[i].contains { $0.1.isNaN } } : nil
        Fatal.agree(bad.map { i in
            let (name, value) = r.scores[i].first { $0.1.isNaN }!
            return "\(set[i].source): the model gives a non-finite \(name) (\(value)): its weights give non-finite values (a run that diverged?); nothing written"
        })
        // A reference that predicts as --model does (the same weights: offline, the model never
        // moves) scores every row 0, and the first rows of the file were written as "selected".
        let learnability = r.scores.map { $0.first { $0.0 == "learnability" }?.1 }
        Fatal.agree(method == "learnability" && !learnability.isEmpty && learnability.allSatisfy({ $0 == 0 })
                    ? "--method learnability: every row scores 0 (the loss under --model less that under --ref-model \(refModel ?? "")): the two predict alike — the same weights? — so the kept rows would be the first of the file; give --ref-model a different model (the target model the rows should teach, or one tuned on a small clean set); nothing written" : nil)
        Fatal.agree(comm.isCoordinator ? write(r, set) : nil, code: Fatal.Code.output)
        if comm.isCoordinator {
            // Q-Tuning's budget is a cap: its quadrants may keep fewer rows than --keep allows.
            let allowed = Int((keep * Double(set.count)).rounded())
            let fewer = r.kept.count < allowed ? " (--keep \(keep) allows \(allowed); \(method)'s rule kept fewer)" : ""
            print("select: kept \(r.kept.count) of \(set.count) rows of \(data) by \(method)\(fewer) → \(out)")
        }
        Runtime.finish()
    }

    /// The kept rows as they were in the input (by their line numbers), and the scores file.
    func write(_ r: OfflineSelection.Result, _ set: Dataset) -> String? {
        do {
            let raw = try JSONLReader.lines(path: data, skipBadLines: true) { .success(String(decoding: $0, as: UTF8.self)) }
            let byLine = Dictionary(raw.values.map { ($0.line, $0.value) }, uniquingKeysWith: { a, _ in a })
            let line = { (i: Int) in Int(set[i].source.split(separator: ":").last ?? "") ?? -1 }
            let kept = Set(r.kept)
            let rows = r.kept.compactMap { byLine[line($0)] }
            let scoreLines = set.examples.indices.map { i -> String in
                MetricsLog.json([("index", i), ("source", set[i].source), ("kept", kept.contains(i))] + r.scores[i].map { ($0.0, $0.1 as Any) })
            }
            if let e = writeAtomically(rows.map { $0 + "\n" }.joined(), to: out) { return e }
            return writeAtomically(scoreLines.map { $0 + "\n" }.joined(), to: scores ?? Self.scoresPath(out))
        } catch {
            return "\(data): \(error)"
        }
    }

    static func scoresPath(_ out: String) -> String {
        (out.hasSuffix(".jsonl") ? String(out.dropLast(6)) : out) + ".scores.jsonl"
    }
}
