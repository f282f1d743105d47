import Foundation
import XCTest
@testable import Training

/// `eval_data`: named files read the same from flags and YAML, written back by recipe.yaml;
/// the retention table and the plot use each set's name.
final class NamedEvalSetsTests: XCTestCase {
    func testFlagsAndYAMLReadNamedFilesAndRefuseDuplicates() throws {
        let key = try XCTUnwrap(Recipe.key(named: "eval_data"))
        XCTAssertEqual(key.flag, "eval-data")
        var r = Recipe()
        try key.read(flag: "add=a.jsonl", into: &r)
        try key.read(flag: "mul_2=dir/m=1.jsonl", into: &r)   // only the first "=" separates
        XCTAssertEqual(r.evalData.files, ["add": "a.jsonl", "mul_2": "dir/m=1.jsonl"])
        XCTAssertEqual(r.evalData.names, ["add", "mul_2"])
        let refused = [("add=b.jsonl", "--eval-data add=b.jsonl: the set name \"add\" is given twice (the first is a.jsonl); name each set once"),
                       ("add", "--eval-data add: expected NAME=FILE (add=add.jsonl)"),
                       ("=x.jsonl", "--eval-data must be NAME=FILE"), ("a.b=x.jsonl", "--eval-data must be NAME=FILE"),
                       ("x=", "--eval-data must be NAME=FILE")]
        for (bad, message) in refused {
            var copy = r
            XCTAssertThrowsError(try key.read(flag: bad, into: &copy), bad) { error in
                XCTAssertTrue("\(error)".hasPrefix(message), "\(error)")
            }
        }
        let back = try Recipe.parse(yaml: r.yaml, source: "recipe.yaml")
        XCTAssertEqual(back.evalData, r.evalData)
        XCTAssertEqual(try JSONDecoder().decode(Recipe.self, from: Data(r.canonicalJSON.utf8)).evalData, r.evalData)
        let yaml = try Recipe.parse(yaml: "eval_data:\n  add: a.jsonl\n  copy: c.jsonl\n", source: "r.yaml")
        XCTAssertEqual(yaml.evalData.files, ["add": "a.jsonl", "copy": "c.jsonl"])
        // In YAML the sets are a mapping; the message says so (it described the flag's NAME=FILE,
        // and a quoted "a=x" was told to drop its quotes, which gave the same refusal).
        let form = "eval_data must be a mapping of set names (1 to 64 letters, digits, - or _) to files, each name once (eval_data: {add: add.jsonl, mul: mul.jsonl})"
        for (text, needle) in [("eval_data: {a/b: x}\n", form + " (got {a/b: x})"), ("eval_data: [a]\n", form + " (got a sequence)"),
                               ("eval_data: \"a=x.jsonl\"\n", form + " (got a=x.jsonl)"), ("eval_data: a=x.jsonl\n", form + " (got a=x.jsonl)"),
                               ("eval_data: {a: x, a: y}\n", "duplicate key \"a\""),
                               // A name over 64 characters: the message says the limit.
                               ("eval_data: {\(String(repeating: "a", count: 65)): x}\n", form)] {
            XCTAssertThrowsError(try Recipe.parse(yaml: text, source: "r.yaml"), text) { error in
                XCTAssertTrue("\(error)".hasPrefix("r.yaml:") && "\(error)".contains(needle), "\(error)")
            }
        }
        // A resumed run may add or drop sets: they change no loss.
        XCTAssertNil(CheckpointState.recipeDifference(saved: Recipe(), current: r))
    }

    /// A set's fields are eval_NAME_ + the held-out set's: names whose fields would land on
    /// another's key (mean_token → eval_mean_token_accuracy twice in one row) are refused, as
    /// is held-out, the log's and plot's name for the held-out set.
    func testSetNamesWhoseMetricsWouldClashAreRefused() throws {
        let scores = GenerationScores(count: 1, passAt1: 0, meanReward: 0, meanLength: 0, ece: 0, passAtK: [2: 0])
        let result = EvalResult(loss: 1, perplexity: 1, tokenAccuracy: 0, entropy: 0, lossTokens: 1, generation: scores, samples: [])
        let keys = result.fields.map(\.0).filter { !$0.contains("@") }
        XCTAssertEqual(keys, EvalResult.fieldNames.map { "eval_" + $0 }, "fieldNames lists every field")
        XCTAssertNil(NamedFiles.clash(["add", "mul", "mean", "x", "token"]))
        XCTAssertEqual(NamedFiles.clash(["add", "mean_token"]),
                       "the set name \"mean_token\" makes the metric eval_mean_token_accuracy, which the held-out set writes too; choose another")
        XCTAssertEqual(NamedFiles.clash(["x", "x_mean_token"]),
                       "the set name \"x_mean_token\" makes the metric eval_x_mean_token_accuracy, which the set \"x\" writes too; choose another")
        XCTAssertEqual(NamedFiles.clash(["held-out"]),
                       "the set name \"held-out\" is how the log and loss.svg name the held-out set (--heldout); choose another")
        var r = Recipe()
        try Recipe.declared.evalData.read(flags: ["mean_token=a.jsonl"], into: &r)
        XCTAssertThrowsError(try r.validate()) {
            XCTAssertEqual("\($0)", "--eval-data: the set name \"mean_token\" makes the metric eval_mean_token_accuracy, which the held-out set writes too; choose another")
        }
    }

    func testRetentionTableShowsBeforeAndAfterPerSet() {
        let before = ["eval_add_loss": 0.5, "eval_add_accuracy": 0.25, "eval_copy_loss": 1.25]
        let after = ["eval_add_loss": 0.125, "eval_add_accuracy": 0.75, "eval_copy_loss": 2.0]
        let lines = NamedEvalSets.retentionTable(names: ["add", "copy"], before: before, after: after)
        XCTAssertEqual(lines.count, 4)
        XCTAssertTrue(lines[2].hasPrefix("  add ") && lines[2].contains("0.5000 → 0.1250") && lines[2].hasSuffix("25.0% → 75.0%"), lines[2])
        XCTAssertTrue(lines[3].contains("1.2500 → 2.0000") && lines[3].hasSuffix("– → –"), lines[3])
        XCTAssertEqual(NamedEvalSets.retentionTable(names: [], before: before, after: after), [])
        // Under dpo a pair set's loss is its DPO loss: marked, where the others' is an NLL.
        let dpo = NamedEvalSets.retentionTable(names: ["pairs", "add"], before: ["eval_pairs_loss": 0.6931, "eval_pairs_rewards/margins": 0, "eval_add_loss": 2],
                                               after: ["eval_pairs_loss": 0.5, "eval_pairs_rewards/margins": 0.4, "eval_add_loss": 1.5])
        XCTAssertTrue(dpo[2].contains("0.6931 → 0.5000 (dpo)"), dpo[2])
        XCTAssertTrue(dpo[3].contains("2.0000 → 1.5000") && !dpo[3].contains("(dpo)"), dpo[3])
        // Under another pair objective, its name.
        let tpo = NamedEvalSets.retentionTable(names: ["pairs"], before: ["eval_pairs_loss": 0.6931, "eval_pairs_rewards/margins": 0],
                                               after: ["eval_pairs_loss": 0.5, "eval_pairs_rewards/margins": 0.4], pairObjective: "tpo")
        XCTAssertTrue(tpo[2].contains("0.6931 → 0.5000 (tpo)"), tpo[2])
    }

    func testThePlotHasEachSetsLossAndAccuracy() {
        let records: [[String: Double]] = [["step": 0, "eval_loss": 3, "eval_add_loss": 2, "eval_add_accuracy": 0.1],
                                           ["step": 1, "loss": 2.5], ["step": 2, "eval_loss": 1, "eval_add_loss": 1.5, "eval_add_accuracy": 0.4]]
        let svg = SVGPlot.lossChart(records: records, title: "t", sets: ["add"])
        XCTAssertTrue(svg.contains(">add NLL</text>") && svg.contains(">add exact match</text>"), svg)
        // Sets the rows hold are drawn though the run names none: a resume with other
        // --eval-data sets dropped the earlier ones' series from the plot without a word.
        XCTAssertTrue(SVGPlot.lossChart(records: records, title: "t").contains(">add NLL</text>"))
        XCTAssertTrue(SVGPlot.lossChart(records: records, title: "t", sets: ["mul"]).contains(">add exact match</text>"))
    }

    /// A reward model's run (`--objective reward`): its held-out loss is the objective's, its
    /// accuracies are pairs ranked right — not an NLL, exact match or rollouts solved — and its
    /// margin is drawn; the retention table says so too.
    func testARewardModelsFiguresAreNamedAsWhatTheyAre() {
        let records: [[String: Double]] = [
            ["step": 0, "eval_loss": 0.7, "eval_accuracy": 0.5, "eval_margin": 0, "eval_add_loss": 0.69, "eval_add_accuracy": 0.5, "eval_add_margin": 0],
            ["step": 1, "loss": 0.68, "accuracy": 0.6, "margin": 0.1],
            ["step": 2, "eval_loss": 0.6, "eval_accuracy": 0.7, "eval_margin": 0.3, "eval_add_loss": 0.65, "eval_add_accuracy": 0.6, "eval_add_margin": 0.2]]
        let svg = SVGPlot.lossChart(records: records, title: "t", sets: ["add"], objective: "reward")
        for label in ["held-out loss (reward)", "held-out pair accuracy", "add loss (reward)", "add pair accuracy", "pair accuracy",
                      "reward margin (chosen − rejected)", "held-out reward margin (chosen − rejected)"] {
            XCTAssertTrue(svg.contains(">\(label)</text>"), label)
        }
        for wrong in ["NLL", "exact match", "rollouts solved"] { XCTAssertFalse(svg.contains(wrong), wrong) }
        let table = NamedEvalSets.retentionTable(names: ["add"], before: records[0], after: records[2])
        XCTAssertTrue(table[1].hasSuffix("pair accuracy") && table[2].contains("(reward)"), "\(table)")
    }

    /// A series equal at every point to an earlier one on its axis is drawn over it: its legend
    /// entry says so (two sets at 0 % exact match showed one line and two legend entries).
    func testASeriesDrawnOverAnEqualOneSaysSo() {
        let records: [[String: Double]] = [
            ["step": 0, "eval_add_loss": 2, "eval_add_accuracy": 0, "eval_mul_loss": 3, "eval_mul_accuracy": 0, "eval_sort_loss": 2, "eval_sort_accuracy": 0.1],
            ["step": 2, "eval_add_loss": 1, "eval_add_accuracy": 0, "eval_mul_loss": 2, "eval_mul_accuracy": 0, "eval_sort_loss": 1.5, "eval_sort_accuracy": 0]]
        let svg = SVGPlot.lossChart(records: records, title: "t", sets: ["add", "mul", "sort"])
        XCTAssertTrue(svg.contains(">mul exact match (= add exact match)</text>"), svg)
        XCTAssertTrue(svg.contains(">add exact match</text>") && svg.contains(">sort exact match</text>"), svg)
        XCTAssertTrue(svg.contains(">add NLL</text>") && svg.contains(">mul NLL</text>") && svg.contains(">sort NLL</text>"), svg)
    }

    /// One spike does not flatten the curve: the axis stops above the 95th percentile and the
    /// spike is drawn at the top, said in the legend. Kept whole: a plain curve, a diverged run
    /// (most values huge), a rise that lasts (a late divergence, two spiking steps in a row),
    /// and every other series — a held-out set that rises is never cut (a review: forgetting
    /// in a retention set was drawn as a flat line at the top).
    func testASpikeIsDrawnAtTheTopInsteadOfFlatteningTheCurve() {
        func clip(_ loss: [(Double, Double)], others: [(Double, Double)] = []) -> Double? {
            SVGPlot.clipTop([SVGPlot.Series(name: "train", color: "#000", points: loss, clippable: true),
                             SVGPlot.Series(name: "set", color: "#111", points: others, dots: true)])
        }
        var rows: [[String: Double]] = (1...30).map { ["step": Double($0), "loss": 5.5 - 0.17 * Double($0)] }
        XCTAssertNil(clip(SVGPlot.points(rows, "loss")))
        rows[14]["loss"] = 13
        let loss = SVGPlot.points(rows, "loss")
        let top = clip(loss)
        XCTAssertNotNil(top)
        XCTAssertLessThan(top ?? 99, 6.5)
        let svg = SVGPlot.lossChart(records: rows, title: "t")
        XCTAssertTrue(svg.contains(">1 value above ") && svg.contains("drawn at the top (largest 13)</text>"), svg)
        // A rising held-out set raises the cut above its own values.
        let rising = (0...3).map { (Double($0) * 10, 6.0 + Double($0)) }
        XCTAssertEqual(clip(loss, others: rising), 9)
        XCTAssertNil(clip(loss, others: [(30, 13.5)]))
        // Two spiking steps in a row, and a late divergence, are kept whole.
        var twice = loss
        twice[15].1 = 12
        XCTAssertNil(clip(twice))
        let late = (1...100).map { i -> (Double, Double) in
            let x = Double(i)
            let loss: Double = i <= 96 ? 3 - 0.02 * x : 1 + 2 * (x - 96)
            return (x, loss)
        }
        XCTAssertNil(clip(late))
        // Diverged: most values huge.
        let diverged = (1...30).map { i -> (Double, Double) in (Double(i), i < 5 ? 5.5 : 1e17 + Double(i)) }
        XCTAssertNil(clip(diverged))
        // The demo's shape: a fast fall from 5.6 in the first tenth, then a slow one, is not cut.
        let demo = (0...1000).map { i -> (Double, Double) in
            let x = Double(i)
            let loss: Double = i < 100 ? 5.6 - 0.046 * x : 1.0 - 0.0007 * (x - 100) + 0.05 * sin(x)
            return (x, loss)
        }
        XCTAssertNil(clip(demo))
    }

    /// An evaluation whose loss was not finite (null in metrics.jsonl) is marked and counted:
    /// the held-out curve simply stopped (a visual review), while skipped steps had their lines.
    func testEvaluationsWithANonFiniteLossAreMarked() throws {
        let path = NSTemporaryDirectory() + "null-eval-\(getpid()).jsonl"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try ("{\"step\": 0, \"eval_loss\": 5.5}\n{\"step\": 1, \"loss\": 5}\n{\"step\": 2, \"loss\": null, \"skipped\": true}\n"
             + "{\"step\": 2, \"eval_loss\": null}\n{\"step\": 4, \"eval_loss\": 4, \"eval_add_loss\": null}\n").write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertNil(try MetricsLog.read(path: path)[3]["eval_loss"])
        let svg = SVGPlot.lossChart(records: try MetricsLog.read(path: path, nullsAsNaN: true), title: "t")
        XCTAssertTrue(svg.contains(">2 evaluations with a non-finite loss</text>"), svg)
        let crosses = svg.components(separatedBy: "<path d=").dropFirst().map { $0.prefix { $0 != ">" } }.filter { $0.contains(SVGPlot.failedColor) }
        XCTAssertEqual(crosses.count, 3, svg)   // the legend's and one per failed evaluation
        // Legend entries side by side, not drawn over each other.
        let xs = svg.components(separatedBy: "<text x=\"").dropFirst().filter { $0.contains(">skipped step") || $0.contains(">2 evaluations") }
            .compactMap { Double($0.prefix { $0 != "\"" }) }
        XCTAssertEqual(Set(xs).count, 2, svg)
    }

    /// A method metric never wears a main series' colour (GRPO's solved share was drawn in held-out
    /// exact match's green, DPO's preference accuracy in held-out NLL's red), nor another's.
    func testMethodMetricsHaveColoursOfTheirOwn() {
        let main: Set = ["#1f77b4", "#d62728", "#2ca02c"]
        XCTAssertGreaterThanOrEqual(SVGPlot.methodColors.count, SVGPlot.methodMetrics.count)
        XCTAssertEqual(Set(SVGPlot.methodColors.prefix(SVGPlot.methodMetrics.count)).count, SVGPlot.methodMetrics.count)
        XCTAssertTrue(main.isDisjoint(with: SVGPlot.methodColors), "\(SVGPlot.methodColors)")
    }

    /// The title tells runs of one model and objective apart by their learning rate and steps.
    func testThePlotTitleSaysTheLearningRateAndSteps() {
        var r = Recipe()
        r.model = "tiny"; r.lr = 0.3; r.steps = 40
        XCTAssertEqual(TrainingJob.plotTitle(r), "sft-dist: tiny, nll, lr 0.3, 40 steps")
        r.steps = 1; r.loraRank = 4; r.lr = 3e-4
        XCTAssertEqual(TrainingJob.plotTitle(r), "sft-dist: tiny, nll, LoRA r=4, lr 0.0003, 1 step")
    }

    /// A panel of percentages only has its gridlines at its labels (they were an unlabelled
    /// −0.5…1.5 scale's: 5 % sat on a line that read as 0 %).
    func testAPanelOfSharesHasGridlinesAtItsLabels() throws {
        let share = SVGPlot.Series(name: "precision", color: "#000", points: [(1, 0.05), (11, 0.3)], dashed: true)
        let svg = SVGPlot.render(title: "t", panels: [SVGPlot.Panel(left: [], right: [share], leftTitle: "v", rightTitle: "share")])
        let grid = svg.split(separator: "\n").joined().components(separatedBy: "<line ").filter { $0.contains("stroke=\"#eee\"") }
            .compactMap { $0.components(separatedBy: "y1=\"").dropFirst().first.flatMap { Double($0.prefix { $0 != "\"" }) } }
        let labels = svg.components(separatedBy: "<text ").filter { $0.contains("%</text>") }
            .compactMap { $0.components(separatedBy: "y=\"").dropFirst().first.flatMap { Double($0.prefix { $0 != "\"" }) }.map { $0 - 4 } }
        XCTAssertEqual(labels.count, 6, svg)
        XCTAssertEqual(grid.sorted(), labels.sorted(), svg)
    }

    /// The method's own signals get a second panel (a GRPO or DPO loss alone says little), the
    /// loss axis fits the data instead of starting at 0, and step ticks are whole steps.
    func testThePlotShowsMethodMetricsAndFitsItsAxes() {
        var grpo: [[String: Double]] = []
        for i in 1...7 {
            let x = Double(i)
            grpo.append(["step": x, "loss": 5.5 - 0.02 * x, "reward": 0.1 * x, "accuracy": 0.05 * x])
        }
        let svg = SVGPlot.lossChart(records: grpo, title: "t", objective: "grpo")
        XCTAssertTrue(svg.contains(">reward (mean over rollouts)</text>") && svg.contains(">rollouts solved</text>"), svg)
        XCTAssertTrue(svg.contains(">train loss (grpo)</text>"), svg)
        XCTAssertFalse(svg.contains("text-anchor=\"end\">0</text>"), "the loss axis starts at 0: \(svg)")
        let steps = svg.components(separatedBy: "text-anchor=\"middle\">").dropFirst().compactMap { Int($0.prefix { $0 != "<" }) }
        XCTAssertTrue(steps.count >= 3 && Set(steps).isSubset(of: Set(1...7)), "step ticks: \(steps)")
        XCTAssertEqual(SVGPlot.ticks(1, 7, integers: true), [2, 4, 6])   // were 1.0, 2.2, … labelled 1, 2, …
        XCTAssertFalse(SVGPlot.lossChart(records: [["step": 1, "loss": 2]], title: "t").contains("reward"))
        // superhf had no second panel, though it logs its rounds' rewards.
        let superhf = SVGPlot.lossChart(records: [["step": 1, "loss": 2, "superhf_reward_mean": 0.2, "superhf_best_reward": 0.9]], title: "t")
        XCTAssertTrue(superhf.contains(">SuperHF reward (kept completions)</text>") && superhf.contains(">SuperHF reward (mean over samples)</text>"), superhf)
        XCTAssertEqual(SVGPlot.label(4071135702393293824), "4.1e+18")
    }

    /// Under dpo the held-out margin and preference accuracy (eval_rewards/*) are drawn beside
    /// the train ones, and the held-out loss is named as the DPO loss; a GRPO run's held-out
    /// exact match (eval_accuracy) is not drawn a second time as held-out "rollouts solved".
    func testHeldOutMethodMetricsAreDrawnOnlyWhereTheEvaluationLogsThem() {
        let dpo: [[String: Double]] = [["step": 0, "eval_loss": 0.69, "eval_rewards/margins": 0, "eval_rewards/accuracies": 0],
                                       ["step": 1, "loss": 0.69, "rewards/margins": 0.1, "rewards/accuracies": 0.5],
                                       ["step": 2, "loss": 0.6, "rewards/margins": 0.3, "rewards/accuracies": 0.75,
                                        "eval_loss": 0.6, "eval_rewards/margins": 0.2, "eval_rewards/accuracies": 0.5]]
        let d = SVGPlot.lossChart(records: dpo, title: "t", objective: "dpo")
        for name in ["held-out loss (dpo)", "held-out DPO margin (chosen − rejected)", "held-out DPO preference accuracy"] {
            XCTAssertTrue(d.contains(">\(name)</text>"), "\(name): \(d)")
        }
        XCTAssertFalse(d.contains("held-out NLL"), d)
        let grpo: [[String: Double]] = [["step": 1, "loss": 0.1, "accuracy": 0.4], ["step": 2, "loss": 0.1, "accuracy": 0.5, "eval_loss": 0.3, "eval_accuracy": 0.7]]
        let g = SVGPlot.lossChart(records: grpo, title: "t", objective: "grpo")
        XCTAssertTrue(g.contains(">rollouts solved</text>") && g.contains(">held-out exact match</text>"), g)
        XCTAssertFalse(g.contains("held-out rollouts solved"), g)
        // gkd's eval_loss is its divergence from the teacher, not an NLL (the legend said "held-out NLL").
        let gkd: [[String: Double]] = [["step": 0, "eval_loss": 0.2], ["step": 1, "loss": 0.3, "on_policy": 1], ["step": 2, "loss": 0.2, "eval_loss": 0.1]]
        let k = SVGPlot.lossChart(records: gkd, title: "t", objective: "gkd")
        XCTAssertTrue(k.contains(">held-out loss (gkd)</text>"), k)
        XCTAssertFalse(k.contains("held-out NLL"), k)
    }

    /// A run resumed across a key's rename (`lr` → `learning_rate`, `reward_mean` → `reward`,
    /// both to TRL's names) has both spellings in one metrics.jsonl: read under today's names,
    /// its plot and tables are whole; a row that has both keeps the new one.
    func testMetricsRowsWrittenBeforeARenameReadUnderTheNewNames() throws {
        let path = NSTemporaryDirectory() + "renamed-\(getpid()).jsonl"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try ("{\"step\": 1, \"loss\": 2, \"lr\": 0.001, \"reward_mean\": 0.25}\n"
             + "{\"step\": 2, \"loss\": 1.5, \"learning_rate\": 0.002, \"reward\": 0.5, \"reward_mean\": 9}\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let rows = try MetricsLog.read(path: path)
        XCTAssertEqual(rows.map { $0["learning_rate"] }, [0.001, 0.002])
        XCTAssertEqual(rows.map { $0["reward"] }, [0.25, 0.5])
        XCTAssertEqual(rows.map { $0["lr"] }, [nil, nil])
        XCTAssertEqual(rows[0]["reward_mean"], nil)
        let svg = SVGPlot.lossChart(records: rows, title: "t", objective: "grpo")
        XCTAssertTrue(svg.contains(">reward (mean over rollouts)</text>"), svg)
    }

    /// A hostile review: a title holding `]]>` or a control character made loss.svg invalid
    /// XML; an 8th named set was drawn exactly as the 1st; a loss flat to 1e-8 had two ticks
    /// labelled alike; the summary printed `0.0000` for GRPO's tiny losses and no bar for one step.
    func testThePlotIsValidXMLAndTellsItsSeriesAndTicksApart() throws {
        let records: [[String: Double]] = (1...3).map { ["step": Double($0), "loss": 5.5099460694 + 1e-9 * Double($0), "eval_loss": 5.5099460284] }
        let svg = SVGPlot.lossChart(records: records, title: "sft-dist: a]]>b/\u{1}model, nll")
        // What XML forbids in text: the sequence ]]>, and control characters but line breaks.
        XCTAssertFalse(svg.contains("]]>"), svg)
        XCTAssertFalse(svg.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" }, svg)
        XCTAssertTrue(svg.contains("a]]&gt;b/\u{FFFD}model"), svg)
        let labels = svg.components(separatedBy: "text-anchor=\"end\">").dropFirst().map { String($0.prefix { $0 != "<" }) }
        XCTAssertGreaterThanOrEqual(labels.count, 2, svg)
        XCTAssertEqual(Set(labels).count, labels.count, "tick labels: \(labels)")
        XCTAssertEqual(SVGPlot.label(150_001, step: 1), "150001")
        XCTAssertEqual(SVGPlot.label(2.5, step: 0.5), "2.5")

        let sets = (1...9).map { "s\($0)" }
        var rows: [[String: Double]] = []
        for step in 1...2 {
            var r: [String: Double] = ["step": Double(step), "loss": 1]
            for name in sets { r["eval_\(name)_loss"] = 1; r["eval_\(name)_accuracy"] = 0.5 }
            rows.append(r)
        }
        let many = SVGPlot.lossChart(records: rows, title: "t", sets: sets)
        // Each legend swatch (a line then its name): no two alike.
        let swatches = many.components(separatedBy: "<line x1=").dropFirst().compactMap { chunk -> String? in
            guard let name = chunk.components(separatedBy: "\">").dropFirst().first?.prefix(while: { $0 != "<" }), name.hasPrefix("s") else { return nil }
            return String(chunk.prefix { $0 != "/" }).components(separatedBy: "stroke=").dropFirst().joined()
        }
        XCTAssertEqual(swatches.count, 18, many)
        XCTAssertEqual(Set(swatches).count, 18, "\(swatches)")

        XCTAssertEqual(ProgressLine.value(2.5e-8), "2.5e-08")
        XCTAssertEqual(ProgressLine.value(-.nan), "nan")
        XCTAssertEqual(ProgressLine.value(1.23456), "1.2346")
        XCTAssertEqual(ProgressLine.sparkline([3]).count, 1)
    }

    /// A step `nan_policy: skip` skipped has no finite loss, so the curve joined its neighbours
    /// over it unseen: it gets a grey line across the plot and a legend entry.
    func testThePlotMarksSkippedSteps() {
        var records: [[String: Double]] = (1...5).map { ["step": Double($0), "loss": 3 - 0.1 * Double($0)] }
        XCTAssertFalse(SVGPlot.lossChart(records: records, title: "t").contains("skipped"))
        records[2] = ["step": 3, "skipped": 1]
        let svg = SVGPlot.lossChart(records: records, title: "t")
        XCTAssertTrue(svg.contains(">skipped step (non-finite, nan_policy: skip)</text>"), svg)
        let lines = svg.components(separatedBy: "<line ").filter { $0.contains("stroke=\"\(SVGPlot.markColor)\"") }
        guard lines.count == 2 else { return XCTFail("legend swatch and one mark expected: \(lines)") }
        // The mark sits at step 3: halfway between steps 1 and 5 on the x axis.
        let x = { (l: String) in Double(l.components(separatedBy: "x1=\"")[1].prefix { $0 != "\"" })! }
        let ticks = svg.components(separatedBy: "<text x=\"").dropFirst().filter { $0.contains("text-anchor=\"middle\">") }
        let tick = { (n: Int) in ticks.first { $0.contains("\">\(n)</text>") }.map { Double($0.prefix { $0 != "\"" })! } }
        if let t2 = tick(2), let t4 = tick(4) { XCTAssertEqual(x(lines[1]), (t2 + t4) / 2, accuracy: 0.01) } else { XCTFail("no ticks at 2 and 4: \(svg)") }
    }
}
