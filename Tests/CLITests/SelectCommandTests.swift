import Foundation
import XCTest

/// `sft-dist select`: the same kept rows and scores at 1 and 2 ranks, the kept rows are the
/// input's lines unchanged and the ones the selector ranks first, bad settings refused.
final class SelectCommandTests: XCTestCase {
    func testLossSelectionKeepsTheHighestLossRowsAtAnyRankCount() throws {
        let dir = CLI.tempDir("select")
        XCTAssertEqual(CLI.sftDist(["make-data", "--out", dir + "/in.jsonl", "--count", "60", "--noise", "0.3"]).status, 0)
        var outputs: [String] = []
        for n in [1, 2] {
            let out = dir + "/kept-\(n).jsonl"
            let r = CLI.mpirun(n, ["select", "--method", "loss", "--keep", "0.25", "--data", dir + "/in.jsonl", "--out", out, "--model", "tiny"])
            XCTAssertEqual(r.status, 0, r.all)
            outputs.append((try? String(contentsOfFile: out, encoding: .utf8)) ?? "")
            outputs.append((try? String(contentsOfFile: dir + "/kept-\(n).scores.jsonl", encoding: .utf8)) ?? "")
        }
        XCTAssertEqual(outputs[0], outputs[2], "kept rows at -n 1 and -n 2")
        // --model defaults to the preset `default`, whose weights are random: said, not silent.
        let untrained = CLI.sftDist(["select", "--method", "loss", "--keep", "0.25", "--data", dir + "/in.jsonl", "--out", dir + "/k.jsonl"])
        XCTAssertEqual(untrained.status, 0, untrained.all)
        XCTAssertEqual(CLI.occurrences(of: "sft-dist: note: --model default is a preset with random weights (seed 1234): --method loss ranks the rows by an untrained model's scores", in: untrained.stderr), 1, untrained.all)
        XCTAssertEqual(outputs[1], outputs[3], "scores at -n 1 and -n 2")
        let input = try String(contentsOfFile: dir + "/in.jsonl", encoding: .utf8).split(separator: "\n").map(String.init)
        let kept = outputs[0].split(separator: "\n").map(String.init)
        XCTAssertEqual(kept.count, 15)
        let scores = outputs[1].split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(scores.count, 60)
        let loss = scores.map { ($0["loss"] as? NSNumber)?.doubleValue ?? .nan }
        let top = Set(loss.indices.sorted { loss[$0] > loss[$1] }.prefix(15))
        XCTAssertEqual(kept, input.indices.filter { top.contains($0) }.map { input[$0] }, "the 15 highest-loss rows, unchanged, in input order")
        XCTAssertEqual(scores.filter { $0["kept"] as? Bool == true }.count, 15)
    }

    func testBadSelectSettingsAreRefused() {
        let dir = CLI.tempDir("select-bad")
        XCTAssertEqual(CLI.sftDist(["make-data", "--out", dir + "/in.jsonl", "--count", "10"]).status, 0)
        let base = ["select", "--data", dir + "/in.jsonl", "--out", dir + "/o.jsonl", "--model", "tiny"]
        let cases: [([String], String)] = [
            (["--method", "loss", "--keep", "0"], "--keep must be in (0, 1] (got 0.0)"),
            (["--method", "loss", "--keep", "1.5"], "--keep must be in (0, 1] (got 1.5)"),
            (["--method", "nope", "--keep", "0.5"], "--method must be one of uds, q-tuning, loss, learnability, random (got nope)"),
            (["--method", "learnability", "--keep", "0.5"], "selection learnability needs a reference model: give --ref-model DIR"),
            (["--method", "uds", "--keep", "0.5", "--method-arg", "gamma=2"], "selection uds: unknown argument(s) gamma;"),
            // A reference of another architecture names what differs (it said "the model being trained").
            (["--method", "learnability", "--keep", "0.5", "--ref-model", HFModelCLITests.model("gpt2")],
             "the reference model's vocab_size is 600, the model's (--model) 260; a reference must share its architecture"),
            // Settings that did nothing were accepted: a budget --keep replaced, a key given
            // twice (the last kept), a reference model no selector but learnability reads.
            (["--method", "random", "--keep", "0.5", "--method-arg", "budget=0.2"],
             "--method-arg budget=0.2: --keep is the fraction kept (the selector's budget); drop --method-arg budget"),
            (["--method", "uds", "--keep", "0.5", "--method-arg", "alpha=0.1", "--method-arg", "alpha=0.2"],
             "--method-arg alpha is given twice (alpha=0.1 and alpha=0.2); give each key once"),
            // Weights outside the method's range were used as given.
            (["--method", "uds", "--keep", "0.5", "--method-arg", "alpha=-1"], "selection uds: alpha=-1.0 must be ≥ 0"),
            (["--method", "q-tuning", "--keep", "0.5", "--method-arg", "iterations=0"], "selection q-tuning: iterations must be an integer in 1…100 (got 0)"),
            // Token pruning is a training step's: select refuses it rather than read, check and ignore it.
            (["--method", "q-tuning", "--keep", "0.5", "--method-arg", "lambda=1.5"], "--method-arg lambda: q-tuning's token pruning (token_budget, lambda) masks tokens"),
            (["--method", "uds", "--keep", "0.5", "--ref-model", HFModelCLITests.model("gpt2")],
             "--ref-model is read by --method learnability (the reference model's loss); --method uds does not read it: drop --ref-model"),
            // random reads no weights: an adapter was loaded and ignored (a hostile review).
            (["--method", "random", "--keep", "0.5", "--adapter", dir + "/adapter"],
             "--adapter \(dir)/adapter changes the model's weights, which --method random does not read (it draws rows by --seed): drop --adapter"),
        ]
        // A seed that draws nothing (a saved model, a selector that does not draw) was accepted.
        let saved = HFModelCLITests.model("gpt2")
        let r = CLI.sftDist(Array(base.dropLast(2)) + ["--model", saved, "--method", "loss", "--keep", "0.5", "--seed", "7"])
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertTrue(r.stderr.contains("--method loss on the model directory \(saved) draws nothing: drop --seed"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/o.jsonl"), "nothing written")
        for accepted in [["--model", saved, "--method", "random"], ["--model", "tiny", "--method", "loss"]] {
            let out = dir + "/seeded.jsonl"
            let r = CLI.sftDist(Array(base.prefix(3)) + ["--out", out, "--keep", "0.5", "--seed", "7"] + accepted)
            XCTAssertEqual(r.status, 0, "\(accepted): \(r.all)")
        }
        for (extra, message) in cases {
            let r = CLI.sftDist(base + extra)
            XCTAssertEqual(r.status, 1, "\(extra): \(r.all)")
            XCTAssertTrue(r.stderr.contains(message), "\(extra): \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/o.jsonl"), "\(extra): nothing written")
        }
    }

    /// Q-Tuning's budget is a cap (arXiv 2509.23873's quadrants keep at most it): the summary
    /// said only "kept 6 of 10" under --keep 0.9, as if --keep had been ignored.
    func testQTuningKeepingFewerThanKeepAllowsSaysSo() throws {
        let dir = CLI.tempDir("select-qtuning-fewer")
        XCTAssertEqual(CLI.sftDist(["make-data", "--out", dir + "/in.jsonl", "--count", "10"]).status, 0)
        // (--keep 0.8: at 0.9 the quadrants keep the 9 allowed, which float32's 0.9 had made 8.)
        let r = CLI.sftDist(["select", "--model", "tiny", "--data", dir + "/in.jsonl", "--method", "q-tuning", "--keep", "0.8",
                             "--out", dir + "/o.jsonl"])
        XCTAssertEqual(r.status, 0, r.all)
        let kept = try String(contentsOfFile: dir + "/o.jsonl", encoding: .utf8).split(separator: "\n").count
        XCTAssertLessThan(kept, 8, "this model's quadrants keep fewer than 8 of these 10 rows: \(r.all)")
        XCTAssertTrue(r.stdout.contains("kept \(kept) of 10 rows of \(dir)/in.jsonl by q-tuning (--keep 0.8 allows 8; q-tuning's rule kept fewer)"), r.all)
        let loss = CLI.sftDist(["select", "--model", "tiny", "--data", dir + "/in.jsonl", "--method", "loss", "--keep", "0.9",
                                "--out", dir + "/o.jsonl"])
        XCTAssertTrue(loss.stdout.contains("kept 9 of 10 rows of \(dir)/in.jsonl by loss → "), loss.all)
    }

    /// `score` and `select` never write over their input or one output over another, and
    /// check every output's directory before writing any (a scores file that could not be
    /// written left the kept rows behind).
    func testOutputsThatWouldOverwriteAnInputAreRefused() throws {
        let dir = CLI.tempDir("select-out")
        XCTAssertEqual(CLI.sftDist(["make-data", "--out", dir + "/in.jsonl", "--count", "10"]).status, 0)
        let input = try String(contentsOfFile: dir + "/in.jsonl", encoding: .utf8)
        let select = ["select", "--data", dir + "/in.jsonl", "--model", "tiny", "--method", "loss", "--keep", "0.5"]
        for (args, message) in [(["score", "--model", "tiny", "--data", dir + "/in.jsonl", "--out", dir + "/in.jsonl"], "is the input --data"),
                                (select + ["--out", dir + "/in.jsonl"], "is the input --data"),
                                (select + ["--out", dir + "/k.jsonl", "--scores", dir + "/in.jsonl"], "is the input --data"),
                                (select + ["--out", dir + "/k.jsonl", "--scores", dir + "/k.jsonl"], "is also --out"),
                                (select + ["--out", dir + "/k.jsonl", "--scores", dir + "/missing/s.jsonl"], "no such directory")] {
            let r = CLI.sftDist(args)
            XCTAssertEqual(r.status, 6, "\(args): \(r.all)")
            XCTAssertTrue(r.stderr.contains(message), "\(args): \(r.stderr)")
            XCTAssertEqual(try String(contentsOfFile: dir + "/in.jsonl", encoding: .utf8), input, "\(args) changed the input")
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/k.jsonl"), "\(args): an output was written")
        }
    }

    /// Pools keep their share of the running total, so the whole keeps round(keep · N): each
    /// pool rounding on its own kept 2 of every 3 rows at --keep 0.5 --pool 3 (13 of 20), and
    /// at least one row per pool kept 7 of 20 at --keep 0.1 --pool 3 (every row at --pool 1).
    func testPoolsTogetherKeepTheRequestedShare() throws {
        let dir = CLI.tempDir("select-pools")
        XCTAssertEqual(CLI.sftDist(["make-data", "--out", dir + "/in.jsonl", "--count", "20"]).status, 0)
        // A share that keeps no row wrote an empty file with exit 0.
        let none = CLI.sftDist(["select", "--data", dir + "/in.jsonl", "--model", "tiny", "--method", "loss", "--keep", "0.01",
                                "--out", dir + "/none.jsonl"])
        XCTAssertEqual(none.status, 1, none.all)
        XCTAssertTrue(none.stderr.contains("--keep 0.01 of 20 rows of \(dir)/in.jsonl keeps none (round(keep · rows) = 0)"), none.all)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/none.jsonl"))
        for (keep, pool, kept, method) in [("0.5", "3", 10, "loss"), ("0.3", "7", 6, "loss"), ("0.5", "1", 10, "loss"),
                                           ("0.1", "3", 2, "loss"), ("0.1", "3", 2, "random"), ("0.25", "2", 5, "uds")] {
            let r = CLI.sftDist(["select", "--data", dir + "/in.jsonl", "--model", "tiny", "--method", method, "--keep", keep,
                                 "--pool", pool, "--out", dir + "/k.jsonl"])
            XCTAssertEqual(r.status, 0, r.all)
            let rows = try String(contentsOfFile: dir + "/k.jsonl", encoding: .utf8).split(separator: "\n")
            XCTAssertEqual(rows.count, kept, "--method \(method) --keep \(keep) --pool \(pool)")
        }
    }
}
