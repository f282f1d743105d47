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
public struct NamedEvalSets {
    public let names: [String]
    let datasets: [Dataset]

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
        let datasets = Fatal.collective { () throws -> [Dataset] in
            let template = try ChatTemplate.resolve(recipe.chatTemplate, tokenizer: setup.tokenizer).template
            return try recipe.evalData.names.map { name in
                let path = recipe.evalData.files[name]!
                let data: Dataset
                do {
                    let all = try Dataset(path: path, tokenizer: setup.tokenizer, maxLength: min(recipe.maxLength, setup.model.maxSequenceLength),
                                          truncation: recipe.truncation, template: template, skipBadLines: recipe.skipBadLines,
                                          lossScope: recipe.lossScope, textField: recipe.datasetTextField)
                    // Scored samples are references only where they score above 0, as the held-out set's.
                    data = recipe.scoredData ? try RunSetup.rightAnswers(all, path: path, recipe: recipe) : all
                } catch { throw DataError("\(recipe.label("eval_data", flag: "eval-data")) \(name)=\(path): \(error)") }
                if data.count == 0 {
                    throw DataError("\(recipe.label("eval_data", flag: "eval-data")) \(name)=\(path): no examples" + (recipe.scoredData ? " with a positive score" : ""))
                }
                return data
            }
        }
        for (name, data) in zip(recipe.evalData.names, datasets) {
            SameInputs.check("--eval-data \(name)=\(recipe.evalData.files[name]!)", examples: data.examples)
        }
        return NamedEvalSets(names: recipe.evalData.names, datasets: datasets)
    }

    public func evaluate(model: LanguageModel, tokenizer: Tokenizer, comm: Communicator,
                         options: EvalOptions) -> [(name: String, result: EvalResult)] {
        zip(names, datasets).map { name, data in
            (name, Fatal.collective { try Evaluator.evaluate(model: model, tokenizer: tokenizer, examples: data.examples,
                                                             comm: comm, options: options) })
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
    public static func retentionTable(names: [String], before: [String: Double]?, after: [String: Double]) -> [String] {
        guard !names.isEmpty else { return [] }
        func loss(_ row: [String: Double]?, _ n: String) -> String { row?["eval_\(n)_loss"].map { String(format: "%.4f", $0) } ?? "–" }
        func em(_ row: [String: Double]?, _ n: String) -> String {
            row?["eval_\(n)_accuracy"].map { String(format: "%.1f%%", $0 * 100) } ?? "–"
        }
        let width = max(4, names.map(\.count).max() ?? 0)
        func pad(_ s: String, _ w: Int) -> String { s + String(repeating: " ", count: max(0, w - s.count)) }
        var lines = ["retention (before = step 0 → after training):",
                     "  " + pad("set", width) + "  " + pad("loss", 18) + "  exact match"]
        for n in names {
            lines.append("  " + pad(n, width) + "  " + pad("\(loss(before, n)) → \(loss(after, n))", 18) + "  \(em(before, n)) → \(em(after, n))")
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
