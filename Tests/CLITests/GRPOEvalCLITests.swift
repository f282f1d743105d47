import Foundation
import XCTest

/// Held-out evaluation under `--objective grpo` reports what TRL's GRPOTrainer evaluates: each
/// held-out prompt rolled out `--eval-rollouts` times, scored, and the GRPO loss computed on
/// them with no update (`eval_loss`), beside the rollouts' figures (`eval_reward`,
/// `eval_completions/*`, …); the same at `mpirun -n 1` and `-n 2` and after a resume.
final class GRPOEvalCLITests: XCTestCase {
    /// The rollout figures an evaluation logs as training does (TRL's names), under eval_.
    static let evalKeys = ["eval_loss", "eval_reward", "eval_reward_std", "eval_rewards/numeric/mean", "eval_rewards/numeric/std",
                           "eval_rewards/format/mean", "eval_frac_reward_zero_std", "eval_completions/mean_length",
                           "eval_completions/clipped_ratio", "eval_entropy", "eval_clip_ratio/region_mean", "eval_ratio"]

    static func args(_ extra: [String]) -> [String] {
        ["train", "--model", GRPOCLITests.warm, "--objective", "grpo", "--reward", "numeric", "--reward-arg", "numeric.tolerance=0.3",
         "--reward", "format=0.1", "--rollouts", "4", "--batch-size", "16", "--micro-batch-size", "3", "--steps", "4",
         "--max-completion-length", "6", "--lr", "3e-3", "--warmup-steps", "0", "--eval-every", "2"] + extra
    }

    func testHeldOutRolloutsGiveTheEvalFiguresAtOneAndTwoRanksAndAfterAResume() throws {
        // At τ 1.5 the sampler's log-probs and the evaluation's forward are both at τ, so the
        // ratio is 1 as in TRL's evaluation (no update between sampling and the loss). The
        // format reward asks for 6 characters, which rollouts of one prompt may or may not give.
        let args = Self.args(["--eval-examples", "6", "--eval-rollouts", "3", "--rollout-temperature", "1.5", "--save-every", "2",
                              "--reward-arg", "format.pattern=(?s).{6,}"])
        var runs: [[[String: Double]]] = []
        for n in [1, 2] {
            let out = CLI.tempDir("grpo-eval-n\(n)")
            let r = CLI.mpirun(n, args + ["--out", out], seconds: 240)
            XCTAssertEqual(r.status, 0, "-n \(n): \(r.all)")
            XCTAssertTrue(r.stdout.contains("grpo's loss and rewards on 3 rollouts of each of 6 held-out prompts"), r.stdout)
            XCTAssertTrue(r.stdout.contains("eval (step 2): held-out grpo loss"), r.stdout)
            runs.append(CLI.evalRows(out))
            if n == 2 {
                let resumed = CLI.tempDir("grpo-eval-resumed")
                let s = CLI.mpirun(2, args + ["--out", resumed, "--resume", out + "/checkpoints/step-000002"], seconds: 240)
                XCTAssertEqual(s.status, 0, s.all)
                runs.append(CLI.evalRows(resumed))
            }
        }
        // The resumed run's metrics carry the checkpoint's run's rows before step 2.
        XCTAssertEqual(runs.map { $0.map { $0["step"] ?? -1 } }, [[0, 2, 4], [0, 2, 4], [0, 2, 4]])
        guard runs.map(\.count) == [3, 3, 3] else { return }
        for row in runs[0] {
            let step = Int(row["step"]!)
            for key in Self.evalKeys { XCTAssertNotNil(row[key], "step \(step): no \(key)") }
            for key in ["eval_ppl", "eval_mean_token_accuracy"] { XCTAssertNil(row[key], "step \(step): \(key) is the NLL's") }
            XCTAssertEqual(row["eval_ratio"] ?? .nan, 1, accuracy: 1e-5, "step \(step): the ratio on fresh rollouts")
            XCTAssertNotNil(row["eval_accuracy"], "step \(step): the greedy answers' exact match")
        }
        // Something was measured: rewards differ within some group at some evaluation.
        XCTAssertTrue(runs[0].contains { ($0["eval_frac_reward_zero_std"] ?? 1) < 1 }, "\(runs[0])")
        for (a, b) in zip(runs[0], runs[1]) {
            let step = Int(a["step"]!)
            for key in Self.evalKeys where !["eval_loss", "eval_entropy", "eval_ratio", "eval_clip_ratio/region_mean"].contains(key) {
                XCTAssertEqual(a[key], b[key], "step \(step) \(key), -n 1 vs -n 2")
            }
            let la = a["eval_loss"] ?? .nan, ea = a["eval_entropy"] ?? .nan
            XCTAssertEqual(la, b["eval_loss"] ?? .nan, accuracy: 1e-6 + 1e-5 * abs(la), "step \(step) eval_loss, -n 1 vs -n 2")
            XCTAssertEqual(ea, b["eval_entropy"] ?? .nan, accuracy: 1e-5 * ea, "step \(step) eval_entropy, -n 1 vs -n 2")
        }
        // The evaluation's streams are a function of (seed, step): the resumed run draws the same.
        for key in Self.evalKeys { XCTAssertEqual(runs[2][2][key], runs[1][2][key], "step 4 \(key), resumed vs uninterrupted") }
    }

    /// A resumed run evaluates as its checkpoint's run did: switching between the held-out NLL
    /// and rollouts would join two kinds of eval_loss in one series, and is refused.
    func testAResumeThatWouldChangeTheEvaluationIsRefused() throws {
        let out = CLI.tempDir("grpo-eval-switch")
        let args = Self.args(["--eval-examples", "4", "--eval-every", "0", "--save-every", "2"])
        let r = CLI.sftDist(args + ["--eval-rollouts", "0", "--out", out], seconds: 180)
        XCTAssertEqual(r.status, 0, r.all)
        let step2 = out + "/checkpoints/step-000002"
        let refused = CLI.sftDist(args + ["--out", CLI.tempDir("grpo-eval-switch-b"), "--resume", step2], seconds: 180)
        XCTAssertEqual(refused.status, 1, refused.all)
        XCTAssertTrue(refused.stderr.contains("the checkpoint's run evaluated the held-out NLL and this one would evaluate 4 rollouts of each held-out prompt"), refused.stderr)
        let same = CLI.sftDist(args + ["--eval-rollouts", "0", "--out", CLI.tempDir("grpo-eval-switch-c"), "--resume", step2], seconds: 180)
        XCTAssertEqual(same.status, 0, same.all)
    }

    /// `--truncation drop` leaves out the held-out prompts that do not fit before counting
    /// eval_examples (the log says how many); `--eval-rollouts N` with no held-out prompt is refused.
    func testDroppedPromptsAreSkippedAndNoHeldOutPromptsIsRefused() throws {
        let dir = CLI.tempDir("grpo-eval-drop")
        // 59 tokens: within the warm model's context of 64 with its answer, over the 58 a rollout prompt may have.
        let long = String(repeating: "x", count: 55) + " 1 ="
        let rows = [(long, " 1"), (long, " 2"), ("add 1 2 =", " 3"), ("add 2 2 =", " 4"), ("add 3 4 =", " 7"), ("add 1 1 =", " 2")]
        let text = rows.map { #"{"prompt": "\#($0.0)", "completion": "\#($0.1)"}"# }.joined(separator: "\n") + "\n"
        try text.write(toFile: dir + "/held.jsonl", atomically: true, encoding: .utf8)
        let r = CLI.sftDist(Self.args(["--heldout", dir + "/held.jsonl", "--eval-examples", "3", "--eval-every", "0", "--steps", "1",
                                       "--max-length", "64", "--truncation", "drop", "--out", dir + "/out"]), seconds: 180)
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stdout.contains("on 4 rollouts of each of 3 held-out prompts, as TRL's GRPOTrainer evaluates (--eval-rollouts; 0: their NLL); 2 longer than the context minus max_completion_length left out (--truncation drop)"), r.stdout)
        for extra in [["--data", dir + "/held.jsonl", "--heldout-fraction", "0"], ["--heldout", dir + "/text.jsonl"]] {
            try #"{"text": "add 1 2 = 3"}"#.write(toFile: dir + "/text.jsonl", atomically: true, encoding: .utf8)
            // Without --eval-every, which a run with no held-out set refuses first.
            // (--truncation given: the long prompts are otherwise refused first, as cut on the right.)
            var args = Self.args(extra + ["--eval-rollouts", "2", "--truncation", "drop", "--out", CLI.tempDir("grpo-eval-none")])
            let at = args.firstIndex(of: "--eval-every")!
            args.removeSubrange(at...(at + 1))
            let s = CLI.sftDist(args, seconds: 180)
            XCTAssertEqual(s.status, 1, "\(extra): \(s.all)")
            XCTAssertTrue(s.stderr.contains("--eval-rollouts 2 rolls out the held-out rows' prompts, and"), "\(extra): \(s.stderr)")
        }
    }

    /// With one reward for every rollout the advantages are 0, so under beta the loss is the
    /// KL term alone: eval_loss = β · eval_kl (dapo: both are means over the same tokens).
    func testWithEqualRewardsTheEvalLossIsBetaTimesTheKL() throws {
        let out = CLI.tempDir("grpo-eval-kl")
        let r = CLI.sftDist(["train", "--model", GRPOCLITests.warm, "--objective", "grpo", "--objective-arg", "beta=0.1",
                             "--reward", "format", "--reward-arg", "format.pattern=(?s).*", "--rollouts", "4", "--batch-size", "16",
                             "--micro-batch-size", "3", "--steps", "4", "--max-completion-length", "6", "--lr", "3e-3",
                             "--warmup-steps", "0", "--eval-every", "0", "--eval-examples", "5", "--out", out], seconds: 180)
        XCTAssertEqual(r.status, 0, r.all)
        let rows = CLI.evalRows(out)
        XCTAssertEqual(rows.map { $0["step"] ?? -1 }, [0, 4])
        guard let after = rows.last, rows.count == 2 else { return }
        XCTAssertEqual(after["eval_frac_reward_zero_std"], 1)
        XCTAssertEqual(after["eval_reward"], 1)
        let kl = after["eval_kl"] ?? .nan
        XCTAssertGreaterThan(kl, 1e-6, "the policy moved from the reference in 4 steps")
        XCTAssertEqual(after["eval_loss"] ?? .nan, 0.1 * kl, accuracy: 1e-6 * kl)
        XCTAssertEqual(rows[0]["eval_loss"], 0, "before training the policy is the reference")
    }

    /// `--eval-rollouts 0` evaluates the held-out NLL; the key is refused where nothing reads it.
    func testEvalRolloutsZeroEvaluatesTheNLLAndTheKeyIsRefusedWhereUnread() throws {
        let out = CLI.tempDir("grpo-eval-nll")
        let r = CLI.sftDist(Self.args(["--eval-examples", "4", "--eval-rollouts", "0", "--eval-every", "0", "--out", out]), seconds: 180)
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertFalse(r.stdout.contains("rollouts of each of"), r.stdout)
        let rows = CLI.evalRows(out)
        XCTAssertEqual(rows.count, 2)
        for row in rows {
            XCTAssertNotNil(row["eval_ppl"])
            XCTAssertNil(row["eval_reward"])
            XCTAssertEqual(row["eval_loss"] ?? .nan, log(row["eval_ppl"] ?? .nan), accuracy: 1e-9)
        }
        let chord = CLI.sftDist(Self.args(["--objective", "chord", "--eval-rollouts", "2", "--out", CLI.tempDir("grpo-eval-chord")]))
        XCTAssertEqual(chord.status, 1, chord.all)
        XCTAssertTrue(chord.stderr.contains("--eval-rollouts is read by grpo's, rloo's, gmpo's and a2po's evaluation"), chord.stderr)
        let none = CLI.sftDist(Self.args(["--eval-rollouts", "2", "--eval-examples", "0", "--out", CLI.tempDir("grpo-eval-none")]))
        XCTAssertEqual(none.status, 1, none.all)
        XCTAssertTrue(none.stderr.contains("--eval-examples 0 gives it none"), none.stderr)
    }
}
