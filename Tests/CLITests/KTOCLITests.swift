import Foundation
import XCTest

/// kto through the CLI (TRL's KTOTrainer): labelled rows (and preference pairs, read as two
/// rows) on the default preset, the same rows under `mpirun -n 1` and `-n 2` (the KL term over
/// the whole step), a resumed run bit-exact, the held-out evaluation as the objective's own
/// loss; settings it cannot use refused with one line.
final class KTOCLITests: XCTestCase {
    /// Additions with their right sum (label true) on two rows in three, and one more (false) on the others.
    static let data: String = {
        let path = CLI.tempDir("kto-data") + "/kto.jsonl"
        let rows = (0..<90).map { i -> String in
            let a = i % 9, b = i / 9, right = i % 3 != 0
            return #"{"prompt": "add \#(a) \#(b) =", "completion": " \#(right ? a + b : a + b + 1)", "label": \#(right)}"#
        }
        try! rows.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }()

    static func args(_ extra: [String] = [], steps: Int = 6) -> [String] {
        ["train", "--data", data, "--objective", "kto", "--batch-size", "8", "--micro-batch-size", "3", "--steps", "\(steps)",
         "--lr", "3e-3", "--warmup-steps", "0", "--eval-examples", "0", "--eval-every", "0", "--quiet"] + extra
    }

    func testRankCountInvariantAndResumedExactly() {
        var kl: [[Double]] = []
        for extra in [[String](), ["--objective-arg", "loss_type=apo_zero_unpaired", "--objective-arg", "desirable_weight=1.5"],
                      ["--objective-arg", "kl_pairing=fixed"]] {
            let runs = CLI.trainingRows(atRanks: [1, 2], Self.args(extra), label: "kto", seconds: 240)
            XCTAssertEqual(runs[0].count, 6, "\(extra)")
            if !extra.contains("loss_type=apo_zero_unpaired") {
                kl.append(runs[0].compactMap { $0["kl"] })
                XCTAssertGreaterThan(runs[0].compactMap { $0["kl"] }.max() ?? 0, 0, "the policy moves from the reference: a KL term above 0")
            } else {
                XCTAssertEqual(Set(runs[0].compactMap { $0["kl"] }), [0], "apo_zero_unpaired: no KL term")
            }
            for (a, b) in zip(runs[0], runs[1]) {
                // (A step without an undesirable row logs no rewards/rejected, nor a margin, as TRL's.)
                for key in ["loss", "grad_norm", "kl", "rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen", "entropy", "loss_tokens"]
                where a[key] != nil || b[key] != nil {
                    let x = a[key] ?? .nan
                    XCTAssertEqual(x, b[key] ?? .nan, accuracy: 1e-6 + 1e-4 * abs(x), "\(extra) step \(a["step"] ?? 0) \(key), -n 1 vs -n 2")
                }
            }
        }
        // The same rows, paired per step and once in file order: other pairs, another KL term.
        XCTAssertEqual(kl.count, 2)
        XCTAssertNotEqual(kl.first, kl.last, "kl_pairing=fixed pairs the rows otherwise than per step")
        CLI.assertResumesBitExact(Self.args(steps: 4), every: 2, label: "kto-resume")
        CLI.assertResumesBitExact(Self.args(["--objective-arg", "kl_pairing=fixed"], steps: 4), every: 2, label: "kto-fixed-resume")
    }

    /// Before training the policy is its reference: every log-ratio and the KL term are 0, so
    /// the held-out kto loss is 1 − σ(0) = ½ and the margin 0; the evaluation is the objective's
    /// loss (eval_kl, eval_rewards/*), at -n 1 and -n 2 alike, and exact match answers only
    /// the desirable held-out rows.
    func testEvaluationIsTheObjectivesLoss() throws {
        var evals: [[[String: Double]]] = []
        for n in [1, 2] {
            let out = CLI.tempDir("kto-eval-\(n)")
            let r = CLI.mpirun(n, Self.args(["--eval-every", "3", "--eval-examples", "100", "--heldout-fraction", "0.2"], steps: 3).filter { $0 != "--quiet" }
                               + ["--out", out], seconds: 240)
            XCTAssertEqual(r.status, 0, r.all)
            XCTAssertTrue(r.stdout.contains("eval (before training): held-out kto loss 0.5000 | kl 0.0000 | margin 0.0000 | entropy "), r.stdout)
            XCTAssertTrue(r.stdout.contains("held-out: 18 of them, split off with seed 1234") && r.stdout.contains("kto: 52 desirable and 20 undesirable training rows (held out: 8 and 10; exact match answers the desirable ones)"), r.stdout)
            let e = CLI.evalRows(out).filter { $0["eval_loss"] != nil }
            XCTAssertEqual(e.count, 2, r.stdout)
            XCTAssertEqual(e.first?["eval_kl"], 0)
            XCTAssertGreaterThan(e.last?["eval_kl"] ?? 0, 0, "the trained policy has moved from the reference on the held-out pairs")
            XCTAssertNotNil(e.last?["eval_rewards/margins"])
            XCTAssertNil(e.last?["eval_ppl"])
            XCTAssertEqual(e.last?["eval_generated"], 8, "the 8 desirable held-out rows answered, not the 10 undesirable ones")
            evals.append(e)
        }
        for key in ["eval_loss", "eval_kl", "eval_rewards/margins", "eval_logps/chosen", "eval_accuracy"] {
            let x = evals[0].last?[key] ?? .nan
            XCTAssertEqual(x, evals[1].last?[key] ?? .nan, accuracy: 1e-6 + 1e-4 * abs(x), "\(key), -n 1 vs -n 2")
        }
    }

    /// A file of preference pairs trains as TRL's unpair_preference_dataset reads it: each pair
    /// two rows, its chosen answer desirable and its rejected one undesirable.
    func testPreferencePairsAreReadAsTwoRows() throws {
        let dir = CLI.tempDir("kto-pairs")
        try (0..<20).map { #"{"prompt": "add \#($0) 1 =", "chosen": " \#($0 + 1)", "rejected": " \#($0)"}"# }
            .joined(separator: "\n").write(toFile: dir + "/pairs.jsonl", atomically: true, encoding: .utf8)
        let r = CLI.sftDist(["train", "--data", dir + "/pairs.jsonl", "--objective", "kto", "--batch-size", "4", "--steps", "2",
                             "--heldout-fraction", "0.25", "--eval-examples", "0", "--out", dir + "/o"])
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stdout.contains("loaded 40 of 40 records"), r.stdout)
        // Held out by line: 5 of the 20 pairs, both rows of each.
        XCTAssertTrue(r.stdout.contains("held-out: 10 of them") && r.stdout.contains("kto: 15 desirable and 15 undesirable training rows (held out: 5 and 5)"), r.stdout)
        XCTAssertFalse(r.stdout.contains("note: kto:"), "balanced labels: no advice on the weights")
    }

    func testSettingsItCannotUseAreRefused() throws {
        let dir = CLI.tempDir("kto-refused")
        try (#"{"prompt": "a", "completion": " b", "label": true}"# + "\n" + #"{"prompt": "a", "completion": " c", "label": "no"}"#)
            .write(toFile: dir + "/bad.jsonl", atomically: true, encoding: .utf8)
        try (0..<6).map { #"{"prompt": "a", "completion": " \#($0)", "label": \#($0 % 2 == 0)}"# }.joined(separator: "\n")
            .write(toFile: dir + "/one-prompt.jsonl", atomically: true, encoding: .utf8)
        try (#"{"prompt": "add 1 1 =", "completion": " 2"}"# + "\n" + #"{"prompt": "add 1 2 =", "completion": " 9", "label": false}"#)
            .write(toFile: dir + "/mixed.jsonl", atomically: true, encoding: .utf8)
        let cases: [([String], String)] = [
            (["--batch-size", "1"], "--batch-size 1: objective kto estimates its KL term from each row's prompt with another row's answer"),
            (["--selection", "loss"], "--selection loss chooses single sequences; objective kto trains on labelled rows"),
            (["--self-train", "rft"], "--self-train rft makes each step's batch from the model's own answers; objective kto trains on labelled rows"),
            (["--no-completion-only-loss"], "objective kto scores the answers of labelled rows only"),
            (["--objective-arg", "loss_type=sigmoid"], "objective kto: unknown loss_type sigmoid; known: kto, apo_zero_unpaired"),
            (["--data", dir + "/bad.jsonl"], "\(dir)/bad.jsonl:2: field \"label\" must be true or false, got \"no\""),
            (["--data", "builtin:tasks"], "objective kto trains on labelled answers: give --data FILE with {\"prompt\", \"completion\", \"label\"} rows"),
            // A prompt cut to fit its answer would start the pairs it lends to; an epoch's last step
            // of one row has no other row's answer; a labelled named set would be read as completions.
            (["--truncation", "left"], "--truncation left cuts each row's prompt to fit its answer; objective kto keeps every row's start"),
            (["--num-train-epochs", "1", "--batch-size", "8", "--heldout-fraction", "0.1"],
             "--num-train-epochs: 81 training rows in steps of 8 leave one row for the last step of each epoch"),
            (["--eval-data", "again=\(Self.data)"], "again=\(Self.data):1 is a labelled answer (or a pair); under objective kto a named set is evaluated as completions"),
            // A labelled row past a named set's first line; one prompt for every row (no other
            // prompt's answer to lend); LoRA dropout, refused beside dpo's reference too.
            (["--eval-data", "mixed=\(dir)/mixed.jsonl"], "mixed=\(dir)/mixed.jsonl:2 is a labelled answer"),
            (["--data", dir + "/one-prompt.jsonl", "--heldout-fraction", "0"], "\(dir)/one-prompt.jsonl: every training row has the same prompt"),
            (["--lora-rank", "2", "--lora-dropout", "0.1"], "--lora-dropout 0.1 with objective kto: the training forward would drop adapter inputs"),
        ]
        for (extra, message) in cases {
            var args = Self.args(extra, steps: 2) + ["--out", dir + "/o"]
            if let i = args.firstIndex(of: "--data"), extra.contains("--data") { args.removeSubrange(i...(i + 1)) }
            if let i = args.firstIndex(of: "--steps"), extra.contains("--num-train-epochs") { args.removeSubrange(i...(i + 1)) }
            let r = CLI.sftDist(args)
            XCTAssertNotEqual(r.status, 0, "\(extra)")
            XCTAssertTrue(r.stderr.contains(message), "\(extra): \(r.all)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "\(extra): one line: \(r.stderr)")
        }
    }

    /// kl_pairing=fixed pairs each row from the whole set: a step of one row, and an epoch's last
    /// step of one row, have their KL term, where the step pairing refuses them; a checkpoint
    /// resumes only under the pairing it was written with.
    func testFixedPairingTakesStepsOfOneRowAndKeepsItsCheckpoints() throws {
        let dir = CLI.tempDir("kto-fixed")
        let fixed = ["--objective-arg", "kl_pairing=fixed"]
        for extra in [["--batch-size", "1", "--micro-batch-size", "1"], ["--num-train-epochs", "1", "--batch-size", "8", "--heldout-fraction", "0.1"]] {
            let out = dir + "/" + extra[0].dropFirst(2)
            var args = Self.args(fixed + extra, steps: 6) + ["--out", out]
            if extra.contains("--num-train-epochs"), let i = args.firstIndex(of: "--steps") { args.removeSubrange(i...(i + 1)) }
            let r = CLI.sftDist(args)
            XCTAssertEqual(r.status, 0, "\(extra): \(r.all)")
            let rows = CLI.trainingRows(out)
            XCTAssertEqual(rows.count, extra.contains("--num-train-epochs") ? 11 : 6, "\(extra)")
            // Steps of one row: the KL term moves off 0 only where they hold their rows' pairs.
            XCTAssertGreaterThan(rows.compactMap { $0["kl"] }.max() ?? 0, 0, "\(extra): a KL term")
            // Under the step pairing the same settings are refused.
            var step = args; step.removeSubrange(step.firstIndex(of: "kl_pairing=fixed")!.advanced(by: -1)...step.firstIndex(of: "kl_pairing=fixed")!)
            let refused = CLI.sftDist(step.dropLast(2) + ["--out", out + "-step"])
            XCTAssertNotEqual(refused.status, 0, "\(extra) with kl_pairing=step")
            XCTAssertTrue(refused.stderr.contains("kl_pairing=fixed"), "the refusal names the way out: \(refused.stderr)")
        }
        XCTAssertEqual(CLI.sftDist(Self.args(["--save-every", "2"], steps: 4) + ["--out", dir + "/a"]).status, 0)
        let switched = CLI.sftDist(Self.args(fixed, steps: 4) + ["--out", dir + "/b", "--resume", dir + "/a/checkpoints/step-000002"])
        XCTAssertEqual(switched.status, 1, switched.all)
        XCTAssertTrue(switched.stderr.contains("kl_pairing"), switched.stderr)
        XCTAssertEqual(CLI.occurrences(of: "error:", in: switched.stderr), 1, switched.stderr)
    }

    /// What runs where a refusal might be expected: a held-out set of one label, evaluated by its
    /// loss; rows cut to no answer token, whose message names --max-length only; a step of one row
    /// without the KL term.
    func testOneLabelHeldOutShortRowsAndAPOStepsOfOneRow() throws {
        let dir = CLI.tempDir("kto-edges")
        // A held-out set without a desirable row is still evaluated with the kto loss (no exact match).
        try (0..<6).map { #"{"prompt": "add 1 \#($0) =", "completion": " 0", "label": false}"# }.joined(separator: "\n")
            .write(toFile: dir + "/wrong.jsonl", atomically: true, encoding: .utf8)
        let wrong = CLI.sftDist(Self.args(["--heldout", dir + "/wrong.jsonl", "--eval-every", "2", "--eval-examples", "4"], steps: 2).filter { $0 != "--quiet" }
                                + ["--out", dir + "/wrong"])
        XCTAssertEqual(wrong.status, 0, wrong.all)
        XCTAssertTrue(wrong.stdout.contains("eval (after training): held-out kto loss "), wrong.stdout)
        XCTAssertFalse(wrong.stdout.contains("nan"), "one label: no margin to show: \(wrong.stdout)")
        XCTAssertEqual(CLI.evalRows(dir + "/wrong").filter { $0["eval_loss"] != nil && $0["eval_rewards/rejected"] != nil }.count, 2)
        // Rows cut to no answer token: --max-length is the way out (kto refuses --truncation left).
        let short = CLI.sftDist(Self.args(["--max-length", "4"], steps: 1) + ["--out", dir + "/short"])
        XCTAssertNotEqual(short.status, 0)
        XCTAssertTrue(short.stderr.contains("no examples left") && !short.stderr.contains("--truncation left"), short.stderr)
        // Without a KL term a step of one row is a step.
        let one = CLI.sftDist(Self.args(["--batch-size", "1", "--objective-arg", "loss_type=apo_zero_unpaired"], steps: 2) + ["--out", dir + "/one"])
        XCTAssertEqual(one.status, 0, one.all)
    }

    /// `sft-dist eval` reads a kto file as completions: the rows labelled false are left out (an
    /// undesirable answer is no reference for the loss or exact match), and a file of them alone
    /// is refused with one line.
    func testEvalLeavesOutTheUndesirableRows() throws {
        let r = CLI.sftDist(["eval", "--model", "tiny", "--data", Self.data, "--examples", "100", "--json"])
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stderr.contains("note: 30 rows of \(Self.data) labelled false (undesirable answers, kto's data) left out"), r.stderr)
        let json = try JSONSerialization.jsonObject(with: Data((r.stdout.split(separator: "\n").last ?? "").utf8)) as? [String: Any]
        XCTAssertEqual(json?["examples"] as? Int, 60)
        XCTAssertEqual(json?["eval_generated"] as? Int, 60)
        let dir = CLI.tempDir("kto-eval-false")
        try (0..<3).map { #"{"prompt": "add 1 \#($0) =", "completion": " 0", "label": false}"# }.joined(separator: "\n")
            .write(toFile: dir + "/false.jsonl", atomically: true, encoding: .utf8)
        let none = CLI.sftDist(["eval", "--model", "tiny", "--data", dir + "/false.jsonl", "--examples", "2"])
        XCTAssertNotEqual(none.status, 0)
        XCTAssertTrue(none.stderr.contains("every row is labelled false"), none.stderr)
        XCTAssertEqual(none.stderr.split(separator: "\n").count, 1, none.stderr)
    }
}
