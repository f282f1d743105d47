import Foundation
import XCTest

/// `--objective rloo` end to end under real mpirun: the same rollouts, KL penalty and losses at
/// one, two and four ranks, a run resumed inside a generation bit-exact, the KL penalty reaching the
/// advantages, the held-out rollouts evaluated as TRL's RLOOTrainer evaluates, and the keys it
/// cannot use refused with one line.
final class RLOOCLITests: XCTestCase {
    /// grpo's CLI recipe (two generations of two steps) under rloo.
    static func args(_ extra: [String] = []) -> [String] { GRPOCLITests.grpo(extra, objective: "rloo") }

    /// Another model of the warm start's architecture, as a reference that differs from it.
    static let otherReference: String = {
        let dir = CLI.tempDir("rloo-reference")
        let r = CLI.sftDist(["train", "--model", "tiny", "--batch-size", "16", "--eval-examples", "0", "--eval-every", "0", "--quiet",
                             "--lr", "1e-2", "--warmup-steps", "0", "--steps", "20", "--seed", "9", "--out", dir])
        precondition(r.status == 0, r.all)
        return dir + "/model"
    }()

    func testRankCountInvariantWithTheKLPenaltyAndResumedExactly() {
        var runs: [[[String: Double]]] = []
        for n in [1, 2, 4] {
            let out = CLI.tempDir("rloo-n\(n)")
            let r = CLI.mpirun(n, Self.args(["--rollout-temperature", "0.8", "--out", out]), seconds: 180)
            XCTAssertEqual(r.status, 0, "-n \(n): \(r.all)")
            runs.append(CLI.trainingRows(out))
        }
        XCTAssertEqual(runs.map(\.count), [4, 4, 4])
        guard runs.allSatisfy({ $0.count == 4 }) else { return }
        let first = runs[0]
        XCTAssertTrue(first.contains { ($0["frac_reward_zero_std"] ?? 1) < 1 }, "every group had equal rewards")
        XCTAssertTrue(first.contains { ($0["grad_norm"] ?? 0) > 1e-4 }, "no gradient in any step")
        // kl on the steps that generate (1 and 3), as TRL logs it once per generation: exactly 0
        // where the policy is still the reference (the same forward scores both), not after two updates.
        XCTAssertEqual(first.map { $0["kl"] != nil }, [true, false, true, false])
        XCTAssertEqual(first[0]["kl"], 0)
        XCTAssertGreaterThan(abs(first[2]["kl"] ?? 0), 1e-3, "the policy moved from the reference")
        // A generation's first step has ratio 1 and leave-one-out advantages summing to 0 per group
        // (the sampler's log-probs as π_old would pass this too, by 1e-7: RLOOTests' on-policy
        // fixture is what tells the detached current weights apart).
        XCTAssertEqual(first[0]["loss"] ?? .nan, 0, accuracy: 1e-6)
        XCTAssertEqual(first[0]["clip_ratio/region_mean"], 0)
        for (k, n) in [2, 4].enumerated() {
            for (i, (a, b)) in zip(runs[0], runs[k + 1]).enumerated() {
                for key in GRPOCLITests.rolloutKeys + ["clip_ratio/low_mean", "clip_ratio/high_mean"] {
                    XCTAssertNotNil(a[key], "step \(i + 1): no \(key)")
                    XCTAssertEqual(a[key], b[key], "step \(i + 1) \(key), -n 1 vs -n \(n)")
                }
                // Step 1's kl is 0 exactly at every rank count (the scoring is one rollout per forward);
                // step 3's policy differs in the summation order of two updates.
                if i == 0 { XCTAssertEqual(b["kl"], 0, "-n \(n)") }
                for key in ["loss", "kl", "entropy", "grad_norm"] where a[key] != nil {
                    let x = a[key]!, y = b[key] ?? .nan
                    XCTAssertEqual(x, y, accuracy: 1e-6 + 1e-4 * abs(x), "step \(i + 1) \(key), -n 1 vs -n \(n)")
                }
            }
        }
        // Inside generation 2 (step 4 reuses it) and at the end of generation 1.
        CLI.assertResumesBitExact(Self.args(["--rollout-temperature", "0.8"]), every: 3, label: "rloo-resume-3")
        CLI.assertResumesBitExact(Self.args(["--objective-arg", "normalize_advantages=true"]), every: 2, label: "rloo-resume-2")
    }

    /// With a reference apart from the policy, step 1's KL is far from 0 and β moves the step's
    /// gradient through the advantages (β = 0: none, no reference loaded, no kl figure).
    func testTheKLPenaltyReachesTheAdvantages() {
        var rows: [[String: Double]] = []
        for beta in ["0", "0.05", "1"] {
            let out = CLI.tempDir("rloo-beta")
            let r = CLI.sftDist(Self.args(["--steps", "1", "--steps-per-generation", "1", "--ref-model", Self.otherReference,
                                           "--objective-arg", "beta=\(beta)", "--out", out]))
            if beta == "0" {   // no reference term: --ref-model would do nothing
                XCTAssertNotEqual(r.status, 0)
                XCTAssertTrue(r.stderr.contains("--ref-model \(Self.otherReference) is read by objectives with a reference term"), r.all)
                let s = CLI.sftDist(Self.args(["--steps", "1", "--steps-per-generation", "1", "--objective-arg", "beta=0", "--out", out]))
                XCTAssertEqual(s.status, 0, s.all)
            } else {
                XCTAssertEqual(r.status, 0, r.all)
            }
            rows.append(CLI.trainingRows(out).first ?? [:])
        }
        XCTAssertNil(rows[0]["kl"])
        XCTAssertEqual(rows[1]["kl"], rows[2]["kl"], "the same rollouts and reference")
        XCTAssertGreaterThan(abs(rows[1]["kl"] ?? 0), 0.1, "the reference differs from the policy")
        XCTAssertEqual(rows[0]["reward"], rows[1]["reward"], "the logged reward is the reward functions' alone")
        let norms = rows.map { $0["grad_norm"] ?? .nan }
        XCTAssertNotEqual(norms[0], norms[1], accuracy: 1e-6 * norms[0], "β = 0.05 left the gradient as β = 0's")
        XCTAssertNotEqual(norms[1], norms[2], accuracy: 1e-6 * norms[1], "β = 1 left the gradient as β = 0.05's")
    }

    /// reward_clip_range 0,0 clamps every reward to 0: at step 1 (KL 0) every advantage is 0 and so
    /// is the gradient, where the same step without it has one.
    func testRewardClipRangeReachesTheAdvantages() {
        var norms: [Double] = []
        for extra in [[], ["--objective-arg", "reward_clip_range=0,0"]] {
            let out = CLI.tempDir("rloo-clip")
            let r = CLI.sftDist(Self.args(extra + ["--steps", "1", "--steps-per-generation", "1", "--out", out]))
            XCTAssertEqual(r.status, 0, r.all)
            norms.append(CLI.trainingRows(out).first?["grad_norm"] ?? .nan)
        }
        XCTAssertGreaterThan(norms[0], 1e-3)
        XCTAssertEqual(norms[1], 0)
    }

    /// A LoRA run's reference is its base with zero adapters: the KL penalty is exactly 0 at step 1.
    func testALoRARunsReferenceIsItsBase() {
        let out = CLI.tempDir("rloo-lora")
        let r = CLI.sftDist(Self.args(["--steps", "1", "--steps-per-generation", "1", "--lora-rank", "2", "--out", out]))
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertEqual(CLI.trainingRows(out).first?["kl"], 0)
    }

    /// The held-out prompts rolled out, scored and trained on with no update (TRL's
    /// prediction_step): on-policy, so ratio 1 and eval_loss the mean −A, 0 for leave-one-out
    /// advantages; the figures the same at -n 1 and -n 2.
    func testEvaluationRollsOutTheHeldOutPrompts() {
        var args = Self.args(["--steps", "2", "--eval-rollouts", "3"])
        for (flag, value) in [("--eval-every", "2"), ("--eval-examples", "6")] { args[args.firstIndex(of: flag)! + 1] = value }
        args.removeAll { $0 == "--quiet" }   // the log's evaluation line
        var runs: [[[String: Double]]] = []
        for n in [1, 2] {
            let out = CLI.tempDir("rloo-eval-n\(n)")
            let r = CLI.mpirun(n, args + ["--out", out], seconds: 240)
            XCTAssertEqual(r.status, 0, "-n \(n): \(r.all)")
            XCTAssertTrue(r.stdout.contains("rloo's loss and rewards on 3 rollouts of each of 6 held-out prompts, as TRL's RLOOTrainer evaluates"), r.stdout)
            runs.append(CLI.evalRows(out))
        }
        XCTAssertEqual(runs.map { $0.map { $0["step"] ?? -1 } }, [[0, 2], [0, 2]])
        guard runs.allSatisfy({ $0.count == 2 }) else { return }
        for row in runs[0] {
            for key in ["eval_loss", "eval_kl", "eval_reward", "eval_entropy", "eval_clip_ratio/region_mean", "eval_frac_reward_zero_std"] {
                XCTAssertNotNil(row[key], "step \(row["step"]!): no \(key)")
            }
            XCTAssertEqual(row["eval_loss"] ?? .nan, 0, accuracy: 1e-6)
            XCTAssertEqual(row["eval_clip_ratio/region_mean"], 0)
        }
        XCTAssertEqual(runs[0][0]["eval_kl"], 0, "before training the policy is the reference")
        for (a, b) in zip(runs[0], runs[1]) {
            for key in ["eval_reward", "eval_frac_reward_zero_std", "eval_completions/mean_length"] { XCTAssertEqual(a[key], b[key], key) }
            XCTAssertEqual(a["eval_kl"] ?? .nan, b["eval_kl"] ?? -1, accuracy: 1e-6, "eval_kl, -n 1 vs -n 2")
        }
    }

    func testSettingsItCannotUseAreRefused() {
        let dir = CLI.tempDir("rloo-refused")
        let cases: [([String], String)] = [
            (["--scale-rewards", "group"], "--scale-rewards scales grpo's group advantages; objective rloo forms leave-one-out advantages"),
            (["--multi-objective-aggregation", "normalize_then_sum"], "--multi-objective-aggregation combines reward functions into grpo's advantages"),
            (["--objective-arg", "loss_type=dapo"], "loss_type"),
            (["--objective-arg", "beta=-1"], "objective rloo: beta must be >= 0, got -1.0"),
            (["--objective-arg", "epsilon=1"], "objective rloo: epsilon must be in [0, 1), got 1.0"),
            (["--objective-arg", "reward_clip_range=1"], "must be two finite numbers lo,hi with lo <= hi"),
            (["--objective-arg", "reward_clip_range=2,1"], "must be two finite numbers lo,hi with lo <= hi"),
        ]
        for (extra, message) in cases {
            let r = CLI.sftDist(Self.args(extra + ["--out", dir + "/o"]))
            XCTAssertNotEqual(r.status, 0, "\(extra)")
            XCTAssertTrue(r.stderr.contains(message), "\(extra): \(r.all)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "\(extra): one line: \(r.stderr)")
        }
    }
}
