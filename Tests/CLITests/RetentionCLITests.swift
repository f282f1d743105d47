import Foundation
import XCTest

/// `--eval-data NAME=FILE` under real mpirun: every evaluation reports each named set's loss
/// and exact match under its name, the same at 1 and 2 ranks; loss.svg plots each set; the
/// run ends with the retention table; bad sets are one-line errors naming the flag.
final class RetentionCLITests: XCTestCase {
    /// The metrics rows of evaluations (no training "loss"), in order.
    func testNamedSetsAreRankCountInvariantPlottedAndTabled() throws {
        let dir = CLI.tempDir("retention")
        for (kind, seed) in [("add", "11"), ("copy", "12")] {
            let r = CLI.sftDist(["make-data", "--out", "\(dir)/\(kind).jsonl", "--kinds", kind, "--count", "25", "--seed", seed])
            XCTAssertEqual(r.status, 0, r.all)
        }
        // A base that has learnt these additions (≈ 1 s), so exact match is not 0 against 0.
        let warm = ["train", "--model", "tiny", "--data", dir + "/add.jsonl", "--heldout", dir + "/add.jsonl", "--batch-size", "16",
                    "--micro-batch-size", "8", "--eval-examples", "0", "--eval-every", "0", "--quiet", "--lr", "1e-2",
                    "--warmup-steps", "5", "--steps", "200", "--out", dir + "/warm"]
        XCTAssertEqual(CLI.sftDist(warm).status, 0)
        // Fine-tune on copying only, which makes it forget part of the additions; batch 7
        // splits 4/3 at 2 ranks, the 25 rows of each set 13/12.
        let args = ["train", "--model", dir + "/warm/model", "--data", dir + "/copy.jsonl", "--heldout", dir + "/copy.jsonl",
                    "--steps", "4", "--eval-every", "2", "--eval-examples", "25", "--batch-size", "7", "--micro-batch-size", "3",
                    "--optimizer", "sgd", "--lr", "0.3", "--warmup-steps", "1",
                    "--eval-data", "add=\(dir)/add.jsonl", "--eval-data", "copy=\(dir)/copy.jsonl"]
        var runs: [[[String: Double]]] = []
        for n in [1, 2] {
            let out = dir + "/run-\(n)"
            let r = CLI.mpirun(n, args + ["--out", out, "--save-every", "2"], seconds: 180)
            XCTAssertEqual(r.status, 0, r.all)
            let rows = CLI.evalRows(out)
            XCTAssertEqual(rows.map { $0["step"] ?? -1 }, [0, 2, 4], "an evaluation before, at step 2 and after")
            for row in rows {
                for key in ["eval_add_loss", "eval_add_accuracy", "eval_copy_loss", "eval_copy_accuracy", "eval_copy_mean_token_accuracy"] {
                    XCTAssertNotNil(row[key], "-n \(n) step \(row["step"] ?? -1): no \(key) in \(row.keys.sorted())")
                }
                XCTAssertEqual(row["eval_add_generated"], 25)
                // The copy set is also the main held-out set: the same numbers under both names.
                XCTAssertEqual(row["eval_copy_loss"], row["eval_loss"])
                XCTAssertEqual(row["eval_copy_accuracy"], row["eval_accuracy"])
            }
            runs.append(rows)
            // The retention table comes last: before (step 0) → after, per set.
            let lines = r.stdout.split(separator: "\n").map(String.init)
            let table = try XCTUnwrap(lines.firstIndex { $0.hasPrefix("retention (before = step 0") }, r.stdout)
            XCTAssertEqual(lines.count - table, 4, "the table ends the output: \(lines.suffix(6))")
            for (i, name) in ["add", "copy"].enumerated() {
                let before = rows[0], after = rows[2]
                let loss = String(format: "%.4f → %.4f", before["eval_\(name)_loss"] ?? .nan, after["eval_\(name)_loss"] ?? .nan)
                let em = String(format: "%.1f%% → %.1f%%", (before["eval_\(name)_accuracy"] ?? .nan) * 100, (after["eval_\(name)_accuracy"] ?? .nan) * 100)
                let line = lines[table + 2 + i]
                XCTAssertTrue(line.hasPrefix("  \(name) ") && line.contains(loss) && line.contains(em), "\(line) vs \(loss), \(em)")
            }
            // Resumed after step 2, the run has no step-0 evaluation of its own: "before" comes
            // back from metrics.jsonl, and the table is the uninterrupted run's.
            let resumed = CLI.mpirun(n, args + ["--out", out, "--resume", out + "/checkpoints/step-000002"], seconds: 180)
            XCTAssertEqual(resumed.status, 0, resumed.all)
            XCTAssertTrue(resumed.stdout.contains("resume: continuing after step 2"), resumed.all)
            XCTAssertEqual(Array(resumed.stdout.split(separator: "\n").map(String.init).suffix(4)), Array(lines.suffix(4)),
                           "the retention table after a resume")
            let svg = try String(contentsOfFile: out + "/loss.svg", encoding: .utf8)
            // The copy set is the held-out file itself: its series are drawn over the held-out
            // ones, and the legend says so.
            for series in ["add NLL", "add exact match", "copy NLL (= held-out NLL)", "copy exact match (= held-out exact match)"] {
                XCTAssertTrue(svg.contains(">\(series)</text>"), "loss.svg has no \(series) series")
            }
        }
        let one = runs[0], two = runs[1]
        XCTAssertEqual(one[0]["eval_add_accuracy"], 1, "the base answers its additions: \(one[0])")
        let kept = one[2]["eval_add_accuracy"] ?? .nan
        XCTAssertTrue(kept > 0 && kept < 1, "fine-tuning on copying forgets some additions, not all: \(kept)")
        for (a, b) in zip(one, two) {
            for key in a.keys where key.hasPrefix("eval_add_") || key.hasPrefix("eval_copy_") {
                let x = a[key] ?? .nan, y = b[key] ?? .nan
                XCTAssertEqual(x, y, accuracy: 1e-5 * max(abs(x), 1e-3), "step \(a["step"] ?? -1) \(key): -n 1 \(x) vs -n 2 \(y)")
            }
        }
    }

    func testBadEvalDataIsOneLineNamingTheFlag() throws {
        let dir = CLI.tempDir("retention-bad")
        XCTAssertEqual(CLI.sftDist(["make-data", "--out", dir + "/add.jsonl", "--kinds", "add", "--count", "5"]).status, 0)
        let cases: [([String], String)] = [
            (["--eval-data", "add=\(dir)/missing.jsonl"], "--eval-data add=\(dir)/missing.jsonl: \(dir)/missing.jsonl: no such file"),
            (["--eval-data", "add"], "--eval-data add: expected NAME=FILE"),
            (["--eval-data", "a b=\(dir)/add.jsonl"], "--eval-data must be NAME=FILE"),
            (["--eval-data", "add=\(dir)/add.jsonl", "--eval-data", "add=\(dir)/add.jsonl"], "--eval-data add=\(dir)/add.jsonl: the set name \"add\" is given twice"),
        ]
        for (flags, needle) in cases {
            let out = dir + "/run"
            let r = CLI.mpirun(2, ["train", "--model", "tiny", "--steps", "1", "--out", out] + flags, seconds: 60)
            XCTAssertEqual(r.status, 1, r.all)
            XCTAssertTrue(r.stderr.contains(needle), "\(flags): \(r.stderr)")
            XCTAssertEqual(CLI.occurrences(of: "sft-dist: error", in: r.stderr), 1, r.all)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(flags): the output directory was created")
        }
        // A file whose rows are not examples names the flag, the set and the line.
        try "{\"prompt\": 3}\n".write(toFile: dir + "/bad.jsonl", atomically: true, encoding: .utf8)
        let r = CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--out", dir + "/run", "--eval-data", "x=\(dir)/bad.jsonl"])
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertTrue(r.stderr.contains("--eval-data x=\(dir)/bad.jsonl: \(dir)/bad.jsonl:1:"), r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
    }

    /// Flags override the recipe: `--eval-data add=…` replaces the recipe's `add` set and adds
    /// new names beside the recipe's other sets (it was refused as "given twice").
    func testEvalDataFlagsOverrideTheRecipesSets() throws {
        let dir = CLI.tempDir("retention-override")
        for kind in ["add", "mul"] {
            XCTAssertEqual(CLI.sftDist(["make-data", "--out", "\(dir)/\(kind).jsonl", "--kinds", kind, "--count", "5"]).status, 0)
        }
        try "eval_data:\n  add: \(dir)/add.jsonl\n  keep: \(dir)/add.jsonl\n".write(toFile: dir + "/r.yaml", atomically: true, encoding: .utf8)
        let r = CLI.sftDist(["train", "--config", dir + "/r.yaml", "--model", "tiny", "--steps", "1", "--eval-examples", "2", "--quiet",
                             "--out", dir + "/run", "--eval-data", "add=\(dir)/mul.jsonl", "--eval-data", "mul=\(dir)/mul.jsonl"])
        XCTAssertEqual(r.status, 0, r.all)
        let recipe = try String(contentsOfFile: dir + "/run/recipe.yaml", encoding: .utf8)
        XCTAssertTrue(recipe.contains("eval_data:\n  add: \(dir)/mul.jsonl\n  keep: \(dir)/add.jsonl\n  mul: \(dir)/mul.jsonl\n"), recipe)
    }
}
