import Distributed
import Foundation
import Models

/// Named held-out sets (`--eval-data NAME=FILE`, recipe `eval_data:`), evaluated at every
/// evaluation beside the main held-out set, so a run shows what fine-tuning does to skills it
/// is not trained on (retention; e.g. per-skill sets from `make-data --kinds add`). Each set is
/// sharded and allreduced like the main one (`Evaluator`), so its numbers do not depend on the
/// rank count. Its metrics are the main set's fields with the name inserted, as transformers'
/// Trainer names a dict of eval datasets (`eval_{name}_loss`): `eval_add_loss`,
/// `eval_add_accuracy` (exact match of the greedy answer), `eval_add_mean_token_accuracy`, …
/// Under dpo a file of pair rows is evaluated as TRL's DPOTrainer evaluates each eval dataset:
/// the DPO loss and its figures (`eval_NAME_loss`, `eval_NAME_rewards/margins`, …), its
/// chosen answers for generation; a file of completions keeps their NLL.
public struct NamedEvalSets {
    public let names: [String]
    /// Per set: what generation reads (a pair set's chosen answers; for a set of completions,
    /// the NLL too), and its pairs (chosen 2i, rejected 2i + 1) when it is a pair file under dpo.
    let sets: [(data: Dataset, pairs: Dataset?)]
    var datasets: [Dataset] { sets.map(\.data) }

    public var isEmpty: Bool { names.isEmpty }

    /// Before anything is written: every file opens as a regular file. A missing or unreadable
    /// file is one line naming the flag and the set.
    public static func checkFiles(_ recipe: Recipe) {
        Fatal.collective {
            // An input the recipe file named, missing or unreadable: the message names the line
            // to edit (`r.yaml:2: data data/x.jsonl: no such file`), as for eval_data below.
            // Given as flags, the messages are the loaders' own.
            var inputs: [(key: String, path: String)] = recipe.data == RunSetup.builtinData ? [] : [("data", recipe.data)]
            for (key, path) in [("heldout", recipe.heldout), ("prompts", recipe.prompts), ("unlabelled", recipe.unlabelled)] {
                if let path { inputs.append((key, path)) }
            }
            for (key, path) in inputs {
                guard let line = recipe.origins[key] else { continue }
                do { close(try InputFile.open(path, limit: Int.max, what: "a JSONL file").fd) } catch {
                    throw DataError("\(line): \(key) \(error)")
                }
            }
            if let line = recipe.origins["model"], !ModelPresets.names.contains(recipe.model),
               !FileManager.default.fileExists(atPath: recipe.model) {
                do { try ModelDirectory.checkIsModel(recipe.model) } catch { throw DataError("\(line): model \(error)") }
            }
            for name in recipe.evalData.names {
                let path = recipe.evalData.files[name]!
                do { close(try InputFile.open(path, limit: Int.max, what: "a JSONL file").fd) } catch {
                    let at = recipe.origins["eval_data." + name].map { "\($0): eval_data" } ?? recipe.label("eval_data", flag: "eval-data")
                    throw DataError("\(at) \(name)=\(path): \(error)")
                }
            }
        }
    }

    /// Reads and tokenizes every set as the run's held-out data is (template, truncation, loss scope).
    public static func load(_ setup: RunSetup) -> NamedEvalSets {
        let recipe = setup.recipe
        let loaded = Fatal.collective { () throws -> [(data: Dataset, pairs: Dataset?)] in
            let template = try ChatTemplate.resolve(recipe.chatTemplate, tokenizer: setup.tokenizer).template
            return try recipe.evalData.names.map { name in
                let path = recipe.evalData.files[name]!
                let data: Dataset
                if setup.objective.requirements.pairs && holdsPairs(path) {
                    do {
                        let pairs = try Dataset(pairsAt: path, tokenizer: setup.tokenizer, maxLength: min(recipe.maxLength, setup.model.maxSequenceLength),
                                                truncation: recipe.pairTruncation(setup.objective), template: template, skipBadLines: recipe.skipBadLines,
                                                sequenceScores: setup.objective.requirements.sequenceScores, goldAnswers: setup.objective.requirements.goldAnswers)
                        return (pairs.chosenOnly, pairs)
                    } catch {
                        let why = "\(error)".contains(#"missing field "chosen""#) ? " (its first row is a pair, so the file is read as pairs: a set is all pairs or all completions)" : ""
                        throw DataError("\(recipe.label("eval_data", flag: "eval-data")) \(name)=\(path): \(error)\(why)")
                    }
                }
                // A reward model has no LM head: it is evaluated on pairs only, as its held-out set is.
                if setup.objective.requirements.sequenceScores {
                    throw DataError("\(recipe.label("eval_data", flag: "eval-data")) \(name)=\(path): its first row is not a pair; objective \(setup.objective.name) trains a reward model, which is evaluated on preference pairs ({\"prompt\", \"chosen\", \"rejected\"} rows), having no completions to predict")
                }
                // kto's labelled rows (or pairs) read as completions would take the undesirable answers as references.
                if setup.objective.requirements.unpaired, let line = firstLineHolding(path, ["label", "chosen", "rejected"]) {
                    throw DataError("\(recipe.label("eval_data", flag: "eval-data")) \(name)=\(path):\(line) is a labelled answer (or a pair); under objective kto a named set is evaluated as completions (their NLL and exact match), which would read the undesirable answers as references: give completions (the held-out set is evaluated with the kto loss)")
                }
                do {
                    let all = try Dataset(path: path, tokenizer: setup.tokenizer, maxLength: min(recipe.maxLength, setup.model.maxSequenceLength),
                                          truncation: recipe.truncation, template: template, skipBadLines: recipe.skipBadLines,
                                          lossScope: recipe.lossScope, textField: recipe.datasetTextField)
                    // Scored samples are references only where they score above 0, as the held-out set's.
                    data = recipe.scoredData ? try RunSetup.rightAnswers(all, path: path, recipe: recipe) : all
                } catch {
                    var why = ""
                    if "\(error)".contains(#"missing field "completion""#) {
                        why = setup.objective.requirements.pairs ? " (its first row is not a pair, so the file is read as completions: a set is all pairs or all completions)"
                            : holdsPairs(path) ? " (a file of preference pairs: only --objective dpo evaluates pairs)" : ""
                    }
                    throw DataError("\(recipe.label("eval_data", flag: "eval-data")) \(name)=\(path): \(error)\(why)")
                }
                if data.count == 0 {
                    throw DataError("\(recipe.label("eval_data", flag: "eval-data")) \(name)=\(path): no examples" + (recipe.scoredData ? " with a positive score" : ""))
                }
                return (data, nil)
            }
        }
        for (name, set) in zip(recipe.evalData.names, loaded) {
            SameInputs.check("--eval-data \(name)=\(recipe.evalData.files[name]!)", examples: (set.pairs ?? set.data).examples)
        }
        return NamedEvalSets(names: recipe.evalData.names, sets: loaded)
    }

    /// The first line whose JSON object has one of `keys`, if any (lines that are no object are
    /// left to the reader, which names them).
    static func firstLineHolding(_ path: String, _ keys: [String]) -> Int? {
        let lines = try? JSONLReader.lines(path: path, skipBadLines: true) { line -> Result<Bool, JSONLReader.LineProblem> in
            guard case .success(let row) = JSONLReader.jsonObject(line) else { return .success(false) }
            return .success(keys.contains { row[$0] != nil })
        }
        return lines?.values.first { $0.value }?.line
    }

    /// Whether the file's first row that is a JSON object is a preference pair (has "chosen"),
    /// its lines split as the loaders split them (BOM, blank and bad lines passed over): read as
    /// pairs under dpo. A file without one goes to the completions' loader and its messages.
    static func holdsPairs(_ path: String) -> Bool {
        var first: Bool? = nil
        // Every line is passed over once the first object has decided (no JSON parse).
        _ = try? JSONLReader.lines(path: path, skipBadLines: true) { line -> Result<Void, JSONLReader.LineProblem> in
            if first == nil, case .success(let row) = JSONLReader.jsonObject(line) { first = row["chosen"] != nil }
            return .success(())
        }
        return first ?? false
    }

    /// The sets' examples as a checkpoint hashes them: a pair set's both answers.
    public var evaluatedExamples: [(name: String, examples: [Example])] {
        zip(names, sets).map { name, set in (name, (set.pairs ?? set.data).examples) }
    }

    /// `evaluatePairs` runs the objective on a pair set (`Trainer.evaluatePairs`).
    /// `progress(name)`: the progress report of set `name`'s evaluation (a line every 5 s once
    /// it runs that long, as the held-out set's), nil for none.
    public func evaluate(model: LanguageModel, tokenizer: Tokenizer, comm: Communicator, options: EvalOptions,
                         progress: (String) -> ((_ phase: String, _ done: Int, _ total: Int) -> Void)? = { _ in nil },
                         evaluatePairs: (Dataset) -> ObjectiveEvaluation) -> [(name: String, result: EvalResult)] {
        zip(names, sets).map { name, set in
            let objective = set.pairs.map(evaluatePairs)
            var setOptions = options
            setOptions.progress = progress(name)
            return (name, Fatal.collective { try Evaluator.evaluate(model: model, tokenizer: tokenizer, examples: set.data.examples,
                                                                    comm: comm, options: setOptions, objective: objective) })
        }
    }

    /// `eval_loss` → `eval_NAME_loss`, and so on for every field of the result.
    public static func fields(_ results: [(name: String, result: EvalResult)]) -> [(String, Any)] {
        results.flatMap { name, r in
            r.fields.map { ("eval_\(name)_" + $0.0.dropFirst("eval_".count), $0.1) }
        }
    }

    /// Before → after per set: held-out loss and exact match. `before` holds the metrics row of
    /// the step-0 evaluation (a resumed run reads it back from metrics.jsonl).
    public static func retentionTable(names: [String], before: [String: Double]?, after: [String: Double],
                                      pairObjective: String = "dpo") -> [String] {
        guard !names.isEmpty else { return [] }
        func loss(_ row: [String: Double]?, _ n: String) -> String { row?["eval_\(n)_loss"].map { String(format: "%.4f", $0) } ?? "–" }
        let rows = [before, after].compactMap { $0 }
        func lossKind(_ n: String) -> String { SVGPlot.isRewardSet(n, in: rows) ? " (reward)" : SVGPlot.isPairSet(n, in: rows) ? " (\(pairObjective))" : "" }
        func em(_ row: [String: Double]?, _ n: String) -> String {
            row?["eval_\(n)_accuracy"].map { String(format: "%.1f%%", $0 * 100) } ?? "–"
        }
        let width = max(4, names.map(\.count).max() ?? 0)
        func pad(_ s: String, _ w: Int) -> String { s + String(repeating: " ", count: max(0, w - s.count)) }
        var lines = ["retention (before = step 0 → after training):",
                     "  " + pad("set", width) + "  " + pad("loss", 18) + (names.allSatisfy { SVGPlot.isRewardSet($0, in: rows) } ? "  pair accuracy" : "  exact match")]
        for n in names {
            lines.append("  " + pad(n, width) + "  " + pad("\(loss(before, n)) → \(loss(after, n))\(lossKind(n))", 18) + "  \(em(before, n)) → \(em(after, n))")
        }
        return lines
    }

    /// The step-0 evaluation row of a metrics file (training rows start at step 1).
    public static func beforeRow(metricsPath: String) -> [String: Double]? {
        (try? MetricsLog.read(path: metricsPath))?.first { $0["step"] == 0 && $0["loss"] == nil }
    }

    /// A metrics row's fields as numbers, for the retention table.
    public static func numbers(_ fields: [(String, Any)]) -> [String: Double] {
        var out: [String: Double] = [:]
        for (k, v) in fields {
            if let d = v as? Double { out[k] = d } else if let i = v as? Int { out[k] = Double(i) }
        }
        return out
    }
}
