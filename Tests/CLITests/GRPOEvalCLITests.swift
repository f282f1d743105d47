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
        XCTAssertTrue(chord.stderr.contains("--eval-rollouts is read by objective grpo's evaluation"), chord.stderr)
        let none = CLI.sftDist(Self.args(["--eval-rollouts", "2", "--eval-examples", "0", "--out", CLI.tempDir("grpo-eval-none")]))
        XCTAssertEqual(none.status, 1, none.all)
        XCTAssertTrue(none.stderr.contains("--eval-examples 0 gives it none"), none.stderr)
    }
}
