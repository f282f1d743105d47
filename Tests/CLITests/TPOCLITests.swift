import Foundation
import XCTest

/// tpo (triple preference optimization: chosen, rejected and a gold answer, TRL's TPOTrainer)
/// through the CLI: step 1's loss is the formula on the logged log-probs and gold NLL; the
/// losses are the same under `mpirun -n 1` and `-n 2`; a resumed run continues bit-exact, and a
/// changed gold answer is refused on resume; the held-out triples are evaluated with the
/// objective; at tpo_alpha 0 the gold column is not needed.
final class TPOCLITests: XCTestCase {
    func args(_ data: String, _ extra: [String], steps: Int = 1, batch: Int = 7) -> [String] {
        ["train", "--model", "tiny", "--data", data, "--objective", "tpo",
         "--batch-size", "\(batch)", "--micro-batch-size", "3", "--steps", "\(steps)", "--lr", "1e-2", "--warmup-steps", "0",
         "--eval-examples", "0", "--eval-every", "0", "--quiet"] + extra.flatMap { ["--objective-arg", $0] }
    }

    /// DPOCLITests' pairs with a gold answer each (`gold` changes line 3's).
    static func writeTriples(_ dir: String, name: String = "triples.jsonl", gold: String = ".") -> String {
        var lines: [String] = []
        for i in 0..<40 {
            let a = i * 7 % 50, b = i * 13 % 30
            lines.append(#"{"prompt": "\#(a)+\#(b)=", "chosen": "\#(a + b)", "rejected": "\#(a + b + 1 + i % 9)\#(i % 2 == 0 ? "0" : "")", "reference": "\#(a + b)\#(i == 2 ? gold : ".")"}"#)
        }
        let path = dir + "/" + name
        FileManager.default.createFile(atPath: path, contents: Data(lines.joined(separator: "\n").utf8))
        return path
    }

    func testStepOneLossIsTheFormulaOnTheLoggedFigures() throws {
        let dir = CLI.tempDir("tpo-formula")
        try #"{"prompt": "3+9=", "chosen": "12", "rejected": "130", "reference": "12."}"#.write(toFile: dir + "/t.jsonl", atomically: true, encoding: .utf8)
        let sp = PreferenceCLITests.softplus
        // (arguments, loss from (ℓ_w, ℓ_l, the gold answer's mean NLL) as logged)
        let cases: [([String], (Double, Double, Double) -> Double)] = [
            ([], { w, l, nll in sp(-0.01 * (w - l)) + nll }),
            (["loss_type=tpo-l", "beta=2", "tpo_alpha=0.5", "tpo_l_gamma=1"], { w, l, nll in sp(-2 * (w - l - 0.5)) + 0.5 * nll }),
            (["loss_type=ipo", "beta=0.5", "tpo_alpha=2"], { w, l, nll in pow(w - l - 1, 2) + 2 * nll }),
            (["loss_type=hinge", "beta=0.5"], { w, l, nll in max(0, 1 - 0.5 * (w - l)) + nll }),
        ]
        for (extra, formula) in cases {
            let out = dir + "/\(extra.first ?? "default")"
            let r = CLI.sftDist(args(dir + "/t.jsonl", extra, batch: 1) + ["--out", out])
            XCTAssertEqual(r.status, 0, "\(extra): \(r.all)")
            let row = try XCTUnwrap(CLI.trainingRows(out).first, "\(extra)")
            let w = try XCTUnwrap(row["logps/chosen"]), l = try XCTUnwrap(row["logps/rejected"]), nll = try XCTUnwrap(row["nll_loss"])
            // The NLL is the gold answer's ("12."), not the chosen one's ("12"), whose mean NLL is −ℓ_w
            // where the loss averages (tpo-l, ipo).
            if extra.first == "loss_type=tpo-l" || extra.first == "loss_type=ipo" { XCTAssertNotEqual(nll, -w, accuracy: 1e-3, "\(extra)") }
            let want = formula(w, l, nll)
            XCTAssertEqual(row["loss"] ?? .nan, want, accuracy: 1e-5 * max(1, abs(want)), "\(extra)")
        }
    }

    func testRankCountInvariantResumedEvaluatedAndGoldChecked() {
        let dir = CLI.tempDir("tpo-ranks")
        let data = Self.writeTriples(dir)
        DPOLossTypeCLITests.assertSameRowsAtOneAndTwoRanks(args(data, ["loss_type=tpo-l", "beta=2"], steps: 4), label: "tpo", "tpo",
                                                           keys: ["loss", "rewards/margins", "nll_loss", "entropy", "grad_norm"])
        let out = CLI.tempDir("tpo-resume")
        let evalArgs = ["--eval-examples", "6", "--eval-every", "2"]
        XCTAssertEqual(CLI.sftDist(args(data, [], steps: 3) + evalArgs + ["--save-every", "2", "--out", out + "/a"]).status, 0)
        let r = CLI.sftDist(args(data, [], steps: 3) + evalArgs + ["--out", out + "/b", "--resume", out + "/a/checkpoints/step-000002"])
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertEqual(CLI.losses(out + "/b").map(\.bitPattern), CLI.losses(out + "/a").map(\.bitPattern))
        let evals = CLI.evalRows(out + "/a")
        XCTAssertFalse(evals.isEmpty, "no evaluation row")
        XCTAssertGreaterThan(evals.first?["eval_nll_loss"] ?? 0, 0, "the held-out triples are evaluated with their gold answers")
        // One gold answer changed: the data differs from the checkpoint's.
        let changed = Self.writeTriples(dir, name: "changed.jsonl", gold: "!")
        let refused = CLI.sftDist(args(changed, [], steps: 3) + evalArgs + ["--out", out + "/c", "--resume", out + "/a/checkpoints/step-000002"])
        XCTAssertEqual(refused.status, 1, refused.all)
        XCTAssertTrue(refused.stderr.contains("the training data differs from the checkpoint's"), refused.all)
    }

    /// An `--eval-data` set of triples is evaluated with tpo's loss, and the retention table says so.
    func testTheRetentionTableNamesTheObjective() {
        let dir = CLI.tempDir("tpo-retention")
        let data = Self.writeTriples(dir)
        let r = CLI.sftDist(["train", "--model", "tiny", "--data", data, "--objective", "tpo", "--batch-size", "7", "--micro-batch-size", "3",
                             "--steps", "2", "--lr", "1e-2", "--warmup-steps", "0", "--eval-examples", "0", "--eval-every", "2",
                             "--eval-data", "tri=\(data)", "--out", dir + "/run"])
        XCTAssertEqual(r.status, 0, r.all)
        let row = r.all.split(separator: "\n").first { $0.hasPrefix("  tri ") }.map(String.init) ?? ""
        XCTAssertTrue(row.contains("(tpo)") && !row.contains("(dpo)"), r.all)
    }

    func testTheGoldColumnIsReadOnlyWhenTrained() {
        let dir = CLI.tempDir("tpo-alpha0")
        let pairs = DPOCLITests.writePairs(dir)
        let missing = CLI.sftDist(args(pairs, []) + ["--out", dir + "/a"])
        XCTAssertEqual(missing.status, 1, missing.all)
        XCTAssertTrue(missing.stderr.contains(#"pairs.jsonl:1: missing field "reference""#), missing.all)
        let alpha0 = CLI.sftDist(args(pairs, ["tpo_alpha=0"]) + ["--out", dir + "/b"])
        XCTAssertEqual(alpha0.status, 0, alpha0.all)
        // No gold answer, no NLL term: nothing named nll_loss is logged (TRL's TPO logs none).
        XCTAssertFalse(CLI.trainingRows(dir + "/b").isEmpty)
        XCTAssertTrue(CLI.trainingRows(dir + "/b").allSatisfy { $0["nll_loss"] == nil })
    }
}
