import Foundation
import XCTest

/// `sft-dist make-data`'s task options from the command line: the rows they write, the
/// refusals (one line, exit code 1, nothing written), and `eval --scorer task` on a variant set.
final class MakeDataTests: XCTestCase {
    func rows(_ path: String) throws -> [[String: Any]] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    func testOptionsReachTheRowsAndBadOnesAreOneLine() throws {
        let dir = CLI.tempDir("make-data")
        let out = dir + "/hard.jsonl"
        let r = CLI.sftDist(["make-data", "--out", out, "--count", "300", "--kinds", "add,sort", "--digits", "3-4",
                             "--template-variant", "arrow", "--noise", "0.5", "--seed", "9"])
        XCTAssertEqual(r.status, 0, r.all)
        let written = try rows(out)
        XCTAssertEqual(written.count, 300)
        for row in written {
            XCTAssertTrue(["add", "sort"].contains(row["kind"] as? String), "\(row)")
            XCTAssertTrue([3, 4].contains(row["digits"] as? Int), "\(row)")
            XCTAssertEqual(row["template"] as? String, "arrow")
            XCTAssertTrue((row["prompt"] as! String).hasSuffix(" ->"))
            XCTAssertNotNil(row["corrupted"] as? Bool)
        }
        XCTAssertEqual(Set(written.map { $0["corrupted"] as! Bool }), [true, false])
        // Training reads the file, measurement fields and all.
        let t = CLI.sftDist(["train", "--model", "tiny", "--data", out, "--steps", "1", "--batch-size", "4",
                             "--eval-examples", "0", "--quiet", "--out", dir + "/run"])
        XCTAssertEqual(t.status, 0, t.all)

        let bad: [([String], String)] = [
            (["--kinds", "div"], "--kinds: unknown kind div; known: add, mul, reverse, copy, repeat, sort, upper"),
            (["--digits", "0-12"], "--digits must be N or LOW-HIGH with 1 ≤ LOW ≤ HIGH ≤ 9 (got 0-12)"),
            (["--variant", "plus-1", "--kinds", "upper"], "--kinds: variant plus-1 has no rule for upper (it has add, mul)"),
            (["--noise", "2"], "--noise must be a number in [0, 1] (got 2.0)"),
            (["--noise-kind", "rows"], "--noise-kind must be one of completion, token (got rows)"),
            (["--unlabelled", "--noise", "0.1"], "--noise: unlabelled rows have no completion to corrupt"),
        ]
        for (args, message) in bad {
            let refused = dir + "/refused.jsonl"
            let r = CLI.sftDist(["make-data", "--out", refused] + args)
            XCTAssertEqual(r.status, 1, "\(args): \(r.all)")
            XCTAssertTrue(r.stderr.hasPrefix("sft-dist: error: ") && r.stderr.contains(message), "\(args): \(r.stderr)")
            XCTAssertEqual(r.stderr.filter { $0 == "\n" }.count, 1, r.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: refused), "\(args) wrote a file")
        }
    }

    /// A held-out set on a rule variant, scored by the task scorer against the prompt's rule:
    /// the same numbers under one and two ranks, and the same as `exact` against the set's
    /// (correct) references.
    func testEvalScoresAVariantSetWithTheTaskScorer() throws {
        let dir = CLI.tempDir("make-data-eval")
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--steps", "2", "--batch-size", "4",
                                    "--eval-examples", "0", "--quiet", "--out", dir + "/run"]).status, 0)
        XCTAssertEqual(CLI.sftDist(["make-data", "--out", dir + "/plus.jsonl", "--count", "12", "--variant", "plus-2"]).status, 0)
        var results: [[String: Any]] = []
        for (n, scorer) in [(1, "task"), (2, "task"), (1, "exact")] {
            let r = CLI.mpirun(n, ["eval", "--model", dir + "/run/model", "--data", dir + "/plus.jsonl", "--scorer", scorer,
                                   "--max-new-tokens", "4", "--json"])
            XCTAssertEqual(r.status, 0, r.all)
            results.append(try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]))
            XCTAssertEqual(results.last?["eval_generated"] as? Int, 12)
        }
        let accuracies = results.map { $0["eval_accuracy"] as! Double }
        XCTAssertEqual(accuracies[0], accuracies[1])
        XCTAssertEqual(accuracies[0], accuracies[2])
    }
}
