import Foundation
import XCTest

/// Held-out evaluation under `--objective dpo` reports what TRL's DPOTrainer evaluates: the
/// DPO loss of the held-out pairs as `eval_loss`, with `eval_rewards/*` and `eval_logps/*`,
/// checked against log-probs that `sft-dist score` computes on its own path, and the same at
/// `mpirun -n 1` and `-n 2`.
final class DPOEvalCLITests: XCTestCase {
    let beta = 0.5

    func pair(_ i: Int) -> (prompt: String, chosen: String, rejected: String) {
        let a = i * 7 % 50, b = i * 13 % 30
        return ("\(a)+\(b)=", "\(a + b)", "\(a + b + 1 + i % 9)\(i % 2 == 0 ? "0" : "")")
    }

    func write(_ path: String, _ rows: [[String: String]]) {
        let text = rows.map { String(data: try! JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys]), encoding: .utf8)! }
        FileManager.default.createFile(atPath: path, contents: Data((text.joined(separator: "\n") + "\n").utf8))
    }

    /// Pairs 0..<30 train, 30..<36 are held out (--heldout).
    func writeData(_ dir: String) {
        func pairs(_ r: Range<Int>) -> [[String: String]] { r.map { let p = pair($0); return ["prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected] } }
        write(dir + "/train.jsonl", pairs(0..<30))
        write(dir + "/held.jsonl", pairs(30..<36))
        write(dir + "/held-chosen.jsonl", (30..<36).map { ["prompt": pair($0).prompt, "completion": pair($0).chosen] })
        write(dir + "/held-rejected.jsonl", (30..<36).map { ["prompt": pair($0).prompt, "completion": pair($0).rejected] })
        write(dir + "/sft.jsonl", (0..<30).map { ["prompt": pair($0).prompt, "completion": pair($0).chosen] })
    }

    func sequenceLogProbs(_ model: String, _ data: String, cwd: String) -> [Double] {
        let r = CLI.sftDist(["score", "--model", model, "--data", data], cwd: cwd)
        XCTAssertEqual(r.status, 0, r.all)
        return r.stdout.split(separator: "\n").compactMap {
            ((try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any])?["sum_logprob"] as? Double
        }
    }

    func testHeldOutDPOFiguresEqualThoseFromScoredLogProbs() throws {
        let dir = CLI.tempDir("dpo-eval")
        writeData(dir)
        // A base that has learnt something, so the policy's and reference's log-probs are not uniform.
        let base = CLI.sftDist(["train", "--model", "tiny", "--data", "sft.jsonl", "--steps", "8", "--lr", "1e-2",
                                "--eval-examples", "0", "--eval-every", "0", "--quiet", "--out", "base"], cwd: dir)
        XCTAssertEqual(base.status, 0, base.all)
        let r = CLI.sftDist(["train", "--model", "base/model", "--data", "train.jsonl", "--heldout", "held.jsonl", "--objective", "dpo",
                             "--objective-arg", "beta=\(beta)", "--batch-size", "4", "--micro-batch-size", "3", "--steps", "5",
                             "--lr", "1e-2", "--warmup-steps", "0", "--eval-examples", "0", "--eval-every", "0", "--out", "dpo"], cwd: dir)
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stdout.contains("held-out: 6 pairs from held.jsonl"), r.stdout)
        XCTAssertTrue(r.stdout.contains("eval (after training): held-out dpo loss "), r.stdout)
        let rows = CLI.evalRows(dir + "/dpo")
        XCTAssertEqual(rows.count, 2, "before and after training")
        guard rows.count == 2 else { return }
        // Before training the policy is the reference: log 2 per pair, every reward 0.
        XCTAssertEqual(rows[0]["eval_loss"] ?? .nan, log(2), accuracy: 1e-7)
        XCTAssertEqual(rows[0]["eval_rewards/margins"] ?? .nan, 0, accuracy: 1e-9)
        XCTAssertNil(rows[0]["eval_ppl"], "no perplexity of a DPO loss")

        let refW = sequenceLogProbs("base/model", "held-chosen.jsonl", cwd: dir), refL = sequenceLogProbs("base/model", "held-rejected.jsonl", cwd: dir)
        let polW = sequenceLogProbs("dpo/model", "held-chosen.jsonl", cwd: dir), polL = sequenceLogProbs("dpo/model", "held-rejected.jsonl", cwd: dir)
        XCTAssertEqual([refW.count, refL.count, polW.count, polL.count], [6, 6, 6, 6])
        guard polL.count == 6, refL.count == 6 else { return }
        var loss = 0.0, chosen = 0.0, rejected = 0.0, correct = 0.0
        for i in 0..<6 {
            let rw = beta * (polW[i] - refW[i]), rl = beta * (polL[i] - refL[i])
            loss += log1p(exp(-(rw - rl))); chosen += rw; rejected += rl; correct += rw > rl ? 1 : 0
        }
        let after = rows[1]
        XCTAssertNotEqual(after["eval_loss"] ?? .nan, log(2), accuracy: 1e-3, "training moved the held-out loss")
        // score prints log-probs to 6 decimals: sums of ≈ 10 tokens carry ≈ 1e-5 of rounding.
        XCTAssertEqual(after["eval_loss"] ?? .nan, loss / 6, accuracy: 2e-5)
        XCTAssertEqual(after["eval_rewards/chosen"] ?? .nan, chosen / 6, accuracy: 2e-5)
        XCTAssertEqual(after["eval_rewards/rejected"] ?? .nan, rejected / 6, accuracy: 2e-5)
        XCTAssertEqual(after["eval_rewards/margins"] ?? .nan, (chosen - rejected) / 6, accuracy: 2e-5)
        XCTAssertEqual(after["eval_rewards/accuracies"] ?? .nan, correct / 6)
        XCTAssertEqual(after["eval_logps/chosen"] ?? .nan, polW.reduce(0, +) / 6, accuracy: 1e-4)
        XCTAssertEqual(after["eval_logps/rejected"] ?? .nan, polL.reduce(0, +) / 6, accuracy: 1e-4)
    }

    /// The evaluation reads the held-out rejected answers too: a resume whose --heldout changed
    /// only those is refused (its eval_loss series would mix two sets), as any other change.
    func testAResumeWithOtherRejectedHeldOutAnswersIsRefused() throws {
        let dir = CLI.tempDir("dpo-eval-resume")
        writeData(dir)
        let args = ["train", "--model", "tiny", "--data", "train.jsonl", "--heldout", "held.jsonl", "--objective", "dpo",
                    "--batch-size", "4", "--steps", "4", "--lr", "1e-2", "--warmup-steps", "0", "--eval-examples", "0",
                    "--eval-every", "0", "--quiet"]
        XCTAssertEqual(CLI.sftDist(args + ["--out", "run", "--save-every", "2"], cwd: dir).status, 0)
        write(dir + "/held.jsonl", (30..<36).map { let p = pair($0); return ["prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected + "9"] })
        let r = CLI.sftDist(args + ["--out", "resumed", "--resume", "run/checkpoints/step-000002"], cwd: dir)
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertTrue(r.stderr.contains("the held-out set (--heldout, or the split of --data) differs from the set the checkpoint's run evaluated"), r.stderr)
    }

    /// `--eval-data NAME=FILE` under dpo: a pair file is evaluated as TRL's DPOTrainer evaluates
    /// each eval dataset (the same figures as the held-out set when it is the same file), a file
    /// of completions keeps their NLL (as `sft-dist eval` computes it); under -n 2, the plot names
    /// each series' loss, and a resume whose pair set's rejected answers changed is refused.
    func testNamedPairSetsGetTheDPOFiguresAndCompletionSetsTheirNLL() throws {
        let dir = CLI.tempDir("dpo-eval-named")
        writeData(dir)
        try FileManager.default.copyItem(atPath: dir + "/held.jsonl", toPath: dir + "/same.jsonl")
        let args = ["train", "--model", "tiny", "--data", dir + "/train.jsonl", "--heldout", dir + "/held.jsonl", "--objective", "dpo",
                    "--eval-data", "same=" + dir + "/same.jsonl", "--eval-data", "answers=" + dir + "/held-chosen.jsonl",
                    "--batch-size", "4", "--micro-batch-size", "3", "--steps", "4", "--lr", "1e-2", "--warmup-steps", "0",
                    "--eval-examples", "0", "--eval-every", "2", "--quiet"]
        let out = dir + "/run"
        let r = CLI.mpirun(2, args + ["--out", out, "--save-every", "2"], seconds: 90)
        XCTAssertEqual(r.status, 0, r.all)
        let rows = CLI.evalRows(out)
        XCTAssertEqual(rows.count, 3)
        for row in rows {
            let main = row.filter { $0.key.hasPrefix("eval_") && !$0.key.hasPrefix("eval_same_") && !$0.key.hasPrefix("eval_answers_") && $0.key != "eval_num_tokens" }
            XCTAssertTrue(main.keys.contains("eval_rewards/margins"), "\(row)")
            for (key, value) in main {
                XCTAssertEqual(row["eval_same_" + key.dropFirst("eval_".count)], value, "step \(row["step"] ?? -1): \(key)")
            }
            XCTAssertNotNil(row["eval_answers_ppl"], "the completions' NLL figures")
            XCTAssertNil(row["eval_answers_rewards/margins"])
        }
        let score = CLI.sftDist(["eval", "--model", out + "/model", "--data", dir + "/held-chosen.jsonl", "--examples", "0", "--json"])
        XCTAssertEqual(score.status, 0, score.all)
        let eval = (try? JSONSerialization.jsonObject(with: Data((score.stdout.split(separator: "\n").last ?? "").utf8))) as? [String: Any]
        XCTAssertEqual(rows.last?["eval_answers_loss"] ?? .nan, (eval?["eval_loss"] as? Double) ?? -1, accuracy: 1e-6)
        let svg = (try? String(contentsOfFile: out + "/loss.svg", encoding: .utf8)) ?? ""
        XCTAssertTrue(svg.contains(">same loss (dpo)") && svg.contains(">answers NLL<"), svg)

        write(dir + "/same.jsonl", (30..<36).map { let p = pair($0); return ["prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected + "9"] })
        let resumed = CLI.sftDist(args + ["--out", dir + "/resumed", "--resume", out + "/checkpoints/step-000002"])
        XCTAssertEqual(resumed.status, 1, resumed.all)
        XCTAssertTrue(resumed.stderr.contains("--eval-data same differs from the set the checkpoint's run evaluated"), resumed.stderr)
    }

    /// A pair file is told by its first row that is a JSON object, its lines split as the
    /// loaders split them: a BOM on a line of its own and a bad first line (skipped) still make
    /// a pair set (both were read as completions, and refused); a set of the wrong kind for the
    /// run says why in its one line.
    func testPairSetsAreToldByTheirFirstRowAndTheWrongKindSaysWhy() throws {
        let dir = CLI.tempDir("dpo-eval-detect")
        writeData(dir)
        let held = try String(contentsOfFile: dir + "/held.jsonl", encoding: .utf8)
        try ("\u{FEFF}\n" + held).write(toFile: dir + "/bom.jsonl", atomically: true, encoding: .utf8)
        try ("{not json\n" + held).write(toFile: dir + "/badfirst.jsonl", atomically: true, encoding: .utf8)
        let chosen = try String(contentsOfFile: dir + "/held-chosen.jsonl", encoding: .utf8)
        try (chosen + held).write(toFile: dir + "/mixed.jsonl", atomically: true, encoding: .utf8)
        let base = ["train", "--model", "tiny", "--data", "train.jsonl", "--heldout-fraction", "0", "--batch-size", "4", "--steps", "1",
                    "--eval-examples", "0", "--quiet"]
        let dpo = base + ["--objective", "dpo", "--skip-bad-lines"]
        for (set, name) in [("bom.jsonl", "bom"), ("badfirst.jsonl", "bad")] {
            let r = CLI.sftDist(dpo + ["--eval-data", "\(name)=\(set)", "--out", name], cwd: dir)
            XCTAssertEqual(r.status, 0, r.all)
            XCTAssertTrue(CLI.evalRows(dir + "/" + name).contains { $0["eval_\(name)_rewards/margins"] != nil }, "\(set): a pair set")
        }
        let nll = CLI.sftDist(base.map { $0 == "train.jsonl" ? "sft.jsonl" : $0 } + ["--eval-data", "p=held.jsonl", "--out", "nll"], cwd: dir)
        XCTAssertEqual(nll.status, 1, nll.all)
        XCTAssertTrue(nll.stderr.contains("(a file of preference pairs: only --objective dpo evaluates pairs)"), nll.stderr)
        let mixed = CLI.sftDist(base + ["--objective", "dpo", "--eval-data", "m=mixed.jsonl", "--out", "mixed"], cwd: dir)
        XCTAssertEqual(mixed.status, 1, mixed.all)
        XCTAssertTrue(mixed.stderr.contains("mixed.jsonl:7: missing field \"completion\" (its first row is not a pair, so the file is read as completions"), mixed.stderr)
    }

    /// Every rank reads the held-out pairs from its own copy: one whose rejected answers differ
    /// from rank 0's is refused in one line (only the chosen answers were compared).
    func testARankWithOtherHeldOutRejectedAnswersIsRefused() throws {
        let r0 = CLI.tempDir("dpo-eval-rank0"), r1 = CLI.tempDir("dpo-eval-rank1")
        writeData(r0); writeData(r1)
        write(r1 + "/held.jsonl", (30..<36).map { let p = pair($0); return ["prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected + "9"] })
        let args = ["train", "--model", "tiny", "--data", "train.jsonl", "--heldout", "held.jsonl", "--objective", "dpo", "--batch-size", "4",
                    "--steps", "1", "--eval-examples", "0", "--quiet", "--out", "out"]
        let r = CLI.mpirunEach([(args, r0), (args, r1)], seconds: 60)
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertEqual(CLI.occurrences(of: "--heldout held.jsonl: this rank read other examples than rank 0 (the same number, 12, with other tokens)", in: r.stderr), 1, r.all)
    }

    func testHeldOutDPOFiguresAreRankCountInvariant() throws {
        let dir = CLI.tempDir("dpo-eval-ranks")
        writeData(dir)
        // 6 held-out pairs in micro-batches of 3 rows: 3 micro-batches of 2 pairs at -n 1, 2 and 1 + 1 at -n 2.
        let args = ["train", "--model", "tiny", "--data", dir + "/train.jsonl", "--heldout", dir + "/held.jsonl", "--objective", "dpo",
                    "--objective-arg", "beta=\(beta)", "--batch-size", "5", "--micro-batch-size", "3", "--steps", "4", "--lr", "1e-2",
                    "--warmup-steps", "0", "--eval-examples", "0", "--eval-every", "2", "--quiet"]
        let runs = [1, 2].map { n -> [[String: Double]] in
            let out = CLI.tempDir("dpo-eval-ranks-\(n)")
            let r = CLI.mpirun(n, args + ["--out", out], seconds: 90)
            XCTAssertEqual(r.status, 0, r.all)
            return CLI.evalRows(out)
        }
        XCTAssertEqual(runs[0].count, 3, "before, step 2, after")
        XCTAssertEqual(runs[1].count, runs[0].count)
        let keys = ["eval_loss", "eval_rewards/chosen", "eval_rewards/rejected", "eval_rewards/margins", "eval_rewards/accuracies",
                    "eval_logps/chosen", "eval_logps/rejected", "eval_logits/chosen", "eval_logits/rejected",
                    "eval_mean_token_accuracy", "eval_entropy"]
        for (i, (a, b)) in zip(runs[0], runs[1]).enumerated() {
            for key in keys {
                let x = a[key] ?? .nan, y = b[key] ?? .nan
                XCTAssertEqual(x, y, accuracy: 1e-5 * max(abs(x), 1), "evaluation \(i) \(key): -n 1 \(x) vs -n 2 \(y)")
            }
        }
        XCTAssertNotEqual(runs[0].last?["eval_loss"] ?? .nan, log(2), accuracy: 1e-3, "training moved the held-out loss")
    }
}
