import Foundation
import XCTest

/// gkd through the CLI (TRL's GKDTrainer): a larger teacher distilled into the tiny preset, the
/// same rows under `mpirun -n 1` and `-n 2` with on- and off-policy steps (and with seq_kd), a
/// resumed run bit-exact; a student that is its own teacher has loss and eval_loss 0; settings
/// it cannot use are refused with one line.
final class GKDCLITests: XCTestCase {
    /// The default preset (about 1.3 M parameters; the student, tiny, is smaller) trained briefly.
    static let teacher: String = {
        let dir = CLI.tempDir("gkd-teacher")
        let r = CLI.sftDist(["train", "--batch-size", "16", "--micro-batch-size", "8", "--eval-examples", "0", "--eval-every", "0",
                             "--quiet", "--lr", "3e-3", "--warmup-steps", "5", "--steps", "150", "--out", dir])
        precondition(r.status == 0, r.all)
        return dir + "/model"
    }()

    static func args(_ extra: [String] = [], steps: Int = 6) -> [String] {
        ["train", "--model", "tiny", "--objective", "gkd", "--ref-model", teacher, "--batch-size", "8", "--micro-batch-size", "3",
         "--steps", "\(steps)", "--max-completion-length", "6", "--lr", "3e-3", "--warmup-steps", "0",
         "--eval-examples", "0", "--eval-every", "0", "--quiet"] + extra
    }

    func testRankCountInvariantWithOnAndOffPolicyStepsAndResumedExactly() {
        for extra in [[String](), ["--objective-arg", "lmbda=0.3", "--objective-arg", "seq_kd=true", "--objective-arg", "beta=0.2"]] {
            let runs = CLI.trainingRows(atRanks: [1, 2], Self.args(extra), label: "gkd", seconds: 240)
            XCTAssertEqual(runs[0].count, 6, "\(extra)")
            let policies = Set(runs[0].compactMap { $0["on_policy"] })
            XCTAssertEqual(policies, [0, 1], "\(extra): the seed gives on- and off-policy steps in six")
            if !extra.isEmpty {
                XCTAssertEqual(Set(runs[0].compactMap { $0["teacher_samples"] }), [0, 1], "seq_kd: the teacher's answers on the off-policy steps")
            }
            for (a, b) in zip(runs[0], runs[1]) {
                for key in ["loss", "grad_norm", "on_policy", "completions/mean_length", "mean_p"] where a[key] != nil || b[key] != nil {
                    let x = a[key] ?? .nan
                    XCTAssertEqual(x, b[key] ?? .nan, accuracy: 1e-6 + 1e-4 * abs(x), "\(extra) step \(a["step"] ?? 0) \(key), -n 1 vs -n 2")
                }
            }
        }
        CLI.assertResumesBitExact(Self.args(steps: 4), every: 2, label: "gkd-resume")
    }

    /// The teacher distilled into itself: every divergence and its gradient are exactly 0 — the
    /// mixture's log at the default β rounded to ±1e-8 there, a gradient of round-off that Adam
    /// scaled to a full step, so the student left its teacher, differently at -n 1 and -n 2 — on
    /// the data's answers and on its own, at a real learning rate (no weight decay, which moves it
    /// off by itself), at -n 2 (micro-batches of 3 split the step unevenly), and the evaluation
    /// reports it as eval_loss, as TRL's GKDTrainer evaluates its loss (no perplexity beside it).
    func testAStudentThatIsItsTeacherHasLossZero() throws {
        for n in [2] {
            let out = CLI.tempDir("gkd-self-\(n)")
            let r = CLI.mpirun(n, ["train", "--model", Self.teacher, "--objective", "gkd", "--ref-model", Self.teacher, "--steps", "3",
                                   "--lr", "1e-3", "--warmup-steps", "0", "--weight-decay", "0", "--eval-every", "1", "--eval-examples", "0",
                                   "--max-completion-length", "4", "--micro-batch-size", "3", "--out", out])
            XCTAssertEqual(r.status, 0, r.all)
            // The evaluation's line names the divergence and the entropy (it showed dpo's reward accuracy and margin, as nan).
            XCTAssertTrue(r.stdout.contains("eval (before training): held-out gkd loss 0.0000 | entropy "), r.stdout)
            XCTAssertFalse(r.stdout.contains("nan"), r.stdout)
            let rows = CLI.trainingRows(out)
            XCTAssertEqual(rows.count, 3)
            XCTAssertEqual(rows.compactMap { $0["on_policy"] }.count, 3)
            for row in rows {
                XCTAssertEqual(row["loss"], 0, "-n \(n): \(row)")
                XCTAssertEqual(row["grad_norm"], 0, "-n \(n): \(row)")
            }
            let evals = CLI.evalRows(out).filter { $0["eval_loss"] != nil }
            XCTAssertEqual(evals.count, 4)
            for e in evals {
                XCTAssertEqual(e["eval_loss"], 0, "-n \(n): \(e)")
                XCTAssertNil(e["eval_ppl"], "\(e)")
            }
        }
        let out = CLI.tempDir("gkd-self")
        // The tiny student's distance from the teacher is not 0.
        let other = CLI.sftDist(Self.args(steps: 1) + ["--out", out + "/tiny"])
        XCTAssertEqual(other.status, 0, other.all)
        XCTAssertGreaterThan(CLI.losses(out + "/tiny").first ?? 0, 0.01)
    }

    /// Under seq_kd a teacher with a longer context (the small preset's 128 positions) answers
    /// past the student's 64: its answers are cut to the student's context (they overran the
    /// student's position table).
    func testATeachersLongerAnswersAreCutToTheStudentsContext() throws {
        let dir = CLI.tempDir("gkd-long-teacher")
        let t = CLI.sftDist(["train", "--model", "small", "--steps", "1", "--eval-examples", "0", "--eval-every", "0", "--quiet", "--out", dir + "/t"])
        XCTAssertEqual(t.status, 0, t.all)
        let r = CLI.sftDist(["train", "--model", "tiny", "--objective", "gkd", "--ref-model", dir + "/t/model", "--objective-arg", "lmbda=0",
                             "--objective-arg", "seq_kd=true", "--max-completion-length", "100", "--batch-size", "8", "--steps", "4",
                             "--eval-examples", "0", "--eval-every", "0", "--quiet", "--out", dir + "/s"])
        XCTAssertEqual(r.status, 0, r.all)
        let rows = CLI.trainingRows(dir + "/s")
        XCTAssertEqual(rows.count, 4)
        for row in rows {
            XCTAssertEqual(row["teacher_samples"], 1, "\(row)")
            // Every answer token is trained, so the trained answers' mean is loss_tokens ÷ 8.
            XCTAssertEqual((row["completions/mean_length"] ?? 0) * 8, row["loss_tokens"] ?? -1, accuracy: 1e-9, "\(row)")
            XCTAssertLessThanOrEqual(row["tokens"] ?? .infinity, 8 * 64, "\(row)")
            // What trains, as cut (it reported the teacher's uncut 102–146 tokens).
            XCTAssertLessThan(row["completions/mean_length"] ?? .infinity, 64, "\(row)")
        }
        // An answer that ran to 100 tokens (or to the teacher's 128 positions) went past 64.
        XCTAssertGreaterThan(rows.compactMap { $0["completions/clipped_ratio"] }.max() ?? 0, 0, "\(rows)")
    }

    /// Sampled answers fit max_length, the row length packing fills (a sample past it trapped in
    /// the packer); held-out rows are never answered, so {"text"} rows there are accepted.
    func testSampledAnswersFitMaxLengthAndHeldOutTextRowsAreAccepted() throws {
        let dir = CLI.tempDir("gkd-fit")
        try (0..<10).map { #"{"text": "free text \#($0)"}"# }.joined(separator: "\n").write(toFile: dir + "/text.jsonl", atomically: true, encoding: .utf8)
        let r = CLI.sftDist(Self.args(["--objective-arg", "lmbda=1", "--packing", "--max-length", "24", "--max-completion-length", "30",
                                       "--heldout", dir + "/text.jsonl"], steps: 2) + ["--out", dir + "/o"])
        XCTAssertEqual(r.status, 0, r.all)
        let rows = CLI.trainingRows(dir + "/o")
        XCTAssertEqual(rows.count, 2)
        // Some answers ran to the 24-token bound (packed rows of 24 held every sequence).
        XCTAssertGreaterThan(rows.compactMap { $0["completions/clipped_ratio"] }.max() ?? 0, 0, "\(rows)")
    }

    func testSettingsItCannotUseAreRefused() throws {
        let dir = CLI.tempDir("gkd-refused")
        // Rows longer than the default preset's 64 positions, for a student of 128 (small).
        try (0..<20).map { #"{"prompt": "\#(String(repeating: "x", count: 80 + $0)) =", "completion": " ab"}"# }
            .joined(separator: "\n").write(toFile: dir + "/long.jsonl", atomically: true, encoding: .utf8)
        try (0..<20).map { #"{"prompt": "", "completion": " x\#($0)"}"# }
            .joined(separator: "\n").write(toFile: dir + "/empty.jsonl", atomically: true, encoding: .utf8)
        let lora = CLI.sftDist(["train", "--model", "tiny", "--lora-rank", "2", "--steps", "2", "--save-every", "2", "--eval-examples", "0",
                                "--eval-every", "0", "--quiet", "--out", dir + "/lora"])
        XCTAssertEqual(lora.status, 0, lora.all)
        // The student is tiny unless a case names another; each run writes its own directory.
        func run(_ extra: [String], out: String = "o") -> CLI.Result {
            CLI.sftDist(["train"] + (extra.contains("--model") ? [] : ["--model", "tiny"])
                        + ["--objective", "gkd", "--steps", "2", "--quiet", "--out", dir + "/" + out] + extra)
        }
        let cases: [([String], String)] = [
            ([], "objective gkd distils a teacher into the model (TRL's GKDTrainer teacher_model): give the teacher with --ref-model DIR"),
            (["--ref-model", HFModelCLITests.model("gpt2")], "the teacher's vocab_size is 600, the student's (--model) 260; a teacher must read the same token ids"),
            (["--ref-model", Self.teacher, "--rollouts", "4"],
             "--rollouts is read by the objectives that sample rollouts (grpo, rloo, gmpo, a2po, online-dpo, chord, srft, uft, prefix-rft, relift); objective gkd samples with rollout_temperature, rollout_top_p, rollout_top_k and max_completion_length only"),
            (["--ref-model", Self.teacher, "--objective-arg", "lmbda=0", "--rollout-temperature", "0.9"],
             "--rollout-temperature acts on gkd's sampled answers, and with lmbda 0 and seq_kd false every step trains on --data's completions"),
            (["--ref-model", Self.teacher, "--selection", "loss"], "--selection loss chooses among the rows of --data, and objective gkd replaces their answers"),
            (["--ref-model", Self.teacher, "--sync-ref-model"], "objective gkd's --ref-model is the teacher it distils, which stays fixed"),
            (["--ref-model", Self.teacher, "--objective-arg", "lmbda=2"], "objective gkd: lmbda must be in [0, 1]"),
            // A review's finds: a shorter-context teacher trapped in its position table; prompts
            // of no token trained nothing on the sampled steps; the prompt's loss on the data's
            // steps only; a LoRA checkpoint was answered with --adapter, which train lacks.
            (["--ref-model", Self.teacher, "--model", "small", "--max-length", "128", "--data", dir + "/long.jsonl"],
             "the teacher reads at most 64 positions, and \(dir)/long.jsonl:"),
            (["--ref-model", Self.teacher, "--objective-arg", "lmbda=1", "--data", dir + "/empty.jsonl"],
             "\(dir)/empty.jsonl:1: the prompt is empty (no token for the model to continue); objective gkd answers --data's prompts"),
            (["--ref-model", Self.teacher, "--no-completion-only-loss"], "--no-completion-only-loss: objective gkd trains the divergence on the answers only"),
            (["--ref-model", dir + "/lora/checkpoints/step-000002/model"], "a checkpoint of a LoRA run; a teacher is a full model"),
            // A second review's: learnability loaded the teacher again as a same-size reference.
            (["--ref-model", Self.teacher, "--objective-arg", "lmbda=0", "--selection", "learnability"],
             "--selection learnability scores the rows against --ref-model as a reference, and objective gkd reads it as its teacher"),
        ]
        for (extra, message) in cases {
            let r = run(extra)
            XCTAssertNotEqual(r.status, 0, "\(extra)")
            XCTAssertTrue(r.stderr.contains(message), "\(extra): \(r.all)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "\(extra): one line: \(r.stderr)")
        }
        // NEFTune noises the student's training forward (its own use: the teacher is another model).
        let noised = run(["--ref-model", Self.teacher, "--neftune-noise-alpha", "5", "--eval-examples", "0"], out: "n")
        XCTAssertEqual(noised.status, 0, noised.all)
        let plain = run(["--ref-model", Self.teacher, "--eval-examples", "0"], out: "p")
        XCTAssertEqual(plain.status, 0, plain.all)
        XCTAssertNotEqual(CLI.losses(dir + "/n"), CLI.losses(dir + "/p"))
        // lmbda 0 without seq_kd trains the data's rows only, so the selection is accepted there.
        let ok = run(["--ref-model", Self.teacher, "--objective-arg", "lmbda=0", "--selection", "loss", "--eval-examples", "0"], out: "s")
        XCTAssertEqual(ok.status, 0, ok.all)
    }
}
