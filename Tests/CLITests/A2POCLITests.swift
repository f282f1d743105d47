import Foundation
import XCTest

/// `--objective a2po` (A*-PO, TRL's A2POTrainer) end to end under real mpirun: stage 1's V* and
/// the losses the same at one, two and three ranks, the policy's log-ratio to the reference 0 at
/// step 1, a resumed run taking V* from the checkpoint and continuing bit-exact, the held-out
/// prompts evaluated with the objective, filter_all_incorrect, and the keys it cannot use
/// refused with one line.
final class A2POCLITests: XCTestCase {
    static let data: String = {
        let path = CLI.tempDir("a2po-data") + "/d.jsonl"
        precondition(CLI.sftDist(["make-data", "--out", path, "--count", "60", "--kinds", "add,mul", "--seed", "5"]).status == 0)
        return path
    }()

    /// grpo's warm start and rewards, one rollout per prompt, two generations of two steps.
    static func args(_ extra: [String] = [], rewards: [String] = ["--reward", "numeric", "--reward-arg", "numeric.tolerance=0.3", "--reward", "format=0.1"]) -> [String] {
        ["train", "--model", GRPOCLITests.warm, "--data", data, "--objective", "a2po"] + rewards
            + ["--batch-size", "8", "--micro-batch-size", "3", "--steps", "4", "--steps-per-generation", "2", "--max-completion-length", "6",
               "--lr", "3e-3", "--warmup-steps", "0", "--eval-examples", "0", "--eval-every", "0",
               "--objective-arg", "beta2=0.1", "--objective-arg", "num_value_samples=4"] + extra
    }

    func testRankCountInvariantResumedAndEvaluated() {
        var runs: [[[String: Double]]] = [], logs: [String] = []
        for n in [1, 2, 3] {
            let out = CLI.tempDir("a2po-n\(n)")
            let r = CLI.mpirun(n, Self.args(["--out", out]), seconds: 180)
            XCTAssertEqual(r.status, 0, "-n \(n): \(r.all)")
            runs.append(CLI.trainingRows(out)); logs.append(r.all)
        }
        XCTAssertEqual(runs.map(\.count), [4, 4, 4])
        guard runs.allSatisfy({ $0.count == 4 }) else { return }
        // The stage-1 line, the same at every rank count (the sampling and scoring are).
        let stage1 = logs.map { $0.split(separator: "\n").first { $0.contains("V* of") }.map(String.init) ?? "" }
        XCTAssertTrue(stage1[0].contains("from 4 reference samples each (stage 1)"), logs[0])
        XCTAssertEqual(Set(stage1).count, 1, "\(stage1)")
        let first = runs[0]
        // Step 1: the policy is the reference, so the implicit reward is exactly 0.
        XCTAssertEqual(first[0]["implicit_reward"], 0)
        // The advantage is r − V*: its mean is the mean reward less the mean V*.
        for (i, row) in first.enumerated() where i % 2 == 0 {
            XCTAssertEqual(row["advantage"] ?? .nan, (row["reward"] ?? .nan) - (row["v_star"] ?? .nan), accuracy: 1e-6, "step \(i + 1)")
        }
        XCTAssertNotEqual(first[2]["implicit_reward"] ?? 0, 0, "the policy moved from the reference")
        for (k, n) in [2, 3].enumerated() {
            for (i, (a, b)) in zip(runs[0], runs[k + 1]).enumerated() {
                for key in GRPOCLITests.rolloutKeys + ["v_star"] {
                    XCTAssertNotNil(a[key], "step \(i + 1): no \(key)")
                    XCTAssertEqual(a[key], b[key], "step \(i + 1) \(key), -n 1 vs -n \(n)")
                }
                for key in ["loss", "implicit_reward", "advantage", "grad_norm"] {
                    let x = a[key] ?? .nan, y = b[key] ?? .nan
                    XCTAssertEqual(x, y, accuracy: 1e-6 + 1e-4 * abs(x), "step \(i + 1) \(key), -n 1 vs -n \(n)")
                }
            }
        }
        // Resumed inside generation 2 at -n 2 from -n 1's checkpoint: V* comes with it.
        let out = CLI.tempDir("a2po-resume")
        let evalArgs = ["--eval-examples", "4", "--eval-every", "2"]
        XCTAssertEqual(CLI.sftDist(Self.args(evalArgs + ["--save-every", "3", "--out", out + "/a"])).status, 0)
        let r = CLI.mpirun(2, Self.args(evalArgs + ["--out", out + "/b", "--resume", out + "/a/checkpoints/step-000003"]), seconds: 180)
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.all.contains("prompts from the checkpoint"), r.all)
        let a = CLI.losses(out + "/a"), b = CLI.losses(out + "/b")
        XCTAssertEqual(b.count, 4, "the checkpoint's three rows and step 4")
        XCTAssertEqual(a.last ?? .nan, b.last ?? 0, accuracy: 1e-6 * max(1, abs(a.last ?? 0)), "step 4 after the resume")
        let evals = CLI.evalRows(out + "/a")
        XCTAssertFalse(evals.isEmpty, "no evaluation row")
        for key in ["eval_loss", "eval_v_star", "eval_implicit_reward", "eval_advantage", "eval_reward"] {
            XCTAssertNotNil(evals.first?[key], "\(key) in \(evals.first ?? [:])")
        }
        XCTAssertEqual(evals.first?["eval_implicit_reward"], 0, "step 0: the policy is the reference")
    }

    func testResumedAtTheSameRankCountIsBitExact() {
        CLI.assertResumesBitExact(Self.args(["--quiet"]), every: 3, label: "a2po-resume-3")
    }

    /// `rollouts` reads 1 (a2po's recipe.yaml writes it); the group objectives still refuse it.
    func testGroupObjectivesStillNeedTwoRollouts() {
        let r = CLI.sftDist(GRPOCLITests.grpo(["--rollouts", "1", "--batch-size", "4", "--out", CLI.tempDir("grpo-one")]))
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertTrue(r.stderr.contains("--rollouts 1: objective grpo compares each prompt's rollouts with each other"), r.stderr)
    }

    /// TRL's A2POConfig beta1/beta2 are objective arguments; the recipe's keys of those names are
    /// AdamW's, and setting them under a2po says so.
    func testAdamWsBetasUnderA2POAreNamed() {
        let r = CLI.sftDist(Self.args(["--beta2", "0.99", "--out", CLI.tempDir("a2po-adam")]))
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertEqual(CLI.occurrences(of: "note: beta2 sets AdamW's moment decay", in: r.all), 1, r.all)
    }

    /// A reward no sample earns leaves no prompt to train on: refused after stage 1 with one
    /// line; filter_all_incorrect=false keeps them (V* 0, advantage 0).
    func testFilterAllIncorrect() {
        let never = ["--reward", "regex", "--reward-arg", "regex.pattern=^NEVER$"]
        let refused = CLI.sftDist(Self.args(["--quiet", "--out", CLI.tempDir("a2po-never")], rewards: never))
        XCTAssertEqual(refused.status, 1, refused.all)
        XCTAssertEqual(CLI.occurrences(of: "none is left to train on", in: refused.stderr), 1, refused.all)
        let all = CLI.sftDist(Self.args(["--objective-arg", "filter_all_incorrect=false", "--out", CLI.tempDir("a2po-keep")], rewards: never))
        XCTAssertEqual(all.status, 0, all.all)
        XCTAssertTrue(all.all.contains("every training prompt kept"), all.all)
        // The numeric reward alone: some prompts' samples all miss and leave the run; a run resumed
        // at -n 2 from -n 1's checkpoint keeps the same prompts (the filter comes with V*).
        let numeric = ["--reward", "numeric", "--reward-arg", "numeric.tolerance=0.3"]
        let out = CLI.tempDir("a2po-some")
        let some = CLI.sftDist(Self.args(["--save-every", "3", "--out", out + "/a"], rewards: numeric))
        XCTAssertEqual(some.status, 0, some.all)
        let kept = some.all.range(of: #"\d+ of 57 training prompts kept"#, options: .regularExpression).map { Int(some.all[$0].split(separator: " ")[0]) ?? -1 }
        XCTAssertNotNil(kept, some.all)
        XCTAssertLessThan(kept ?? 57, 57, "no prompt was dropped: the test does not exercise the filter")
        XCTAssertGreaterThan(kept ?? 0, 0)
        let resumed = CLI.mpirun(2, Self.args(["--out", out + "/b", "--resume", out + "/a/checkpoints/step-000003"], rewards: numeric), seconds: 180)
        XCTAssertEqual(resumed.status, 0, resumed.all)
        XCTAssertTrue(resumed.all.contains("from the checkpoint") && resumed.all.contains("\(kept ?? -1) of 57 training prompts kept"), resumed.all)
        let a = CLI.trainingRows(out + "/a"), b = CLI.trainingRows(out + "/b")
        XCTAssertEqual(a.last?["reward"], b.last?["reward"], "step 4 draws the same prompts and rollouts")
        XCTAssertEqual(a.last?["v_star"], b.last?["v_star"])
    }

    /// A run's recipe.yaml runs again as it is (it writes eval_rollouts -1, "as rollouts"); a
    /// resume with another eval_examples samples the new held-out prompts' V* and goes on.
    func testTheSavedRecipeRunsAndEvalExamplesMayChangeOnResume() {
        let out = CLI.tempDir("a2po-recipe")
        XCTAssertEqual(CLI.sftDist(Self.args(["--quiet", "--eval-examples", "2", "--eval-every", "2", "--save-every", "2", "--out", out + "/a"])).status, 0)
        let again = CLI.sftDist(["train", "--config", out + "/a/recipe.yaml", "--quiet", "--out", out + "/b"])
        XCTAssertEqual(again.status, 0, again.all)
        XCTAssertEqual(CLI.losses(out + "/b").map(\.bitPattern), CLI.losses(out + "/a").map(\.bitPattern))
        let more = CLI.sftDist(Self.args(["--eval-examples", "3", "--eval-every", "2", "--out", out + "/c", "--resume", out + "/a/checkpoints/step-000002"]))
        XCTAssertEqual(more.status, 0, more.all)
        XCTAssertTrue(more.all.contains("3 held-out prompts from the checkpoint, the held-out prompts' from 4 reference samples each"), more.all)
        XCTAssertNotNil(CLI.evalRows(out + "/c").last?["eval_v_star"])
    }

    func testKeysItCannotUseAreRefused() {
        for (extra, why) in [(["--rollouts", "4"], "samples one answer per prompt"), (["--rollouts", "2"], "leave it unset or give 1"),
                             (["--scale-rewards", "none"], "regresses onto r − V*(x)"),
                             (["--mask-truncated-completions"], "regresses every answer's log-ratio"),
                             (["--sync-ref-model"], "V* is estimated from it once"),
                             (["--eval-rollouts", "2", "--eval-examples", "4"], "evaluates one answer per held-out prompt"),
                             (["--multi-objective-aggregation", "normalize_then_sum"], "reads the weighted sum Σ w·r, as TRL's A2POTrainer"),
                             (["--bema", "--bema-update-ref-model"], "V* is estimated from it once")] {
            let r = CLI.sftDist(Self.args(extra + ["--out", CLI.tempDir("a2po-refused")]))
            XCTAssertEqual(r.status, 1, "\(extra): \(r.all)")
            XCTAssertTrue(r.stderr.contains(why), "\(extra): \(r.stderr)")
        }
    }
}
