import Foundation
import XCTest

/// `--objective gmpo` end to end under real mpirun: the same rollouts and losses at one, two and
/// four ranks (β > 0, a reference in the step), a run resumed inside a generation bit-exact,
/// the held-out rollouts evaluated with gmpo's loss, and bad arguments refused in one line.
final class GMPOCLITests: XCTestCase {
    /// grpo's CLI recipe (two generations of two steps) under gmpo.
    static func args(_ extra: [String] = []) -> [String] { GRPOCLITests.grpo(extra, objective: "gmpo") }

    func testRankCountInvariantAndResumedExactly() {
        var runs: [[[String: Double]]] = []
        for n in [1, 2, 4] {
            let out = CLI.tempDir("gmpo-n\(n)")
            let r = CLI.mpirun(n, Self.args(["--objective-arg", "beta=0.04", "--rollout-temperature", "0.8", "--out", out]), seconds: 180)
            XCTAssertEqual(r.status, 0, "-n \(n): \(r.all)")
            runs.append(CLI.trainingRows(out))
        }
        XCTAssertEqual(runs.map(\.count), [4, 4, 4])
        guard runs.allSatisfy({ $0.count == 4 }) else { return }
        let first = runs[0]
        XCTAssertTrue(first.contains { ($0["grad_norm"] ?? 0) > 1e-4 }, "no gradient in any step")
        // A generation's first step: every weight is exactly 1, so nothing is clipped; the kl is 0
        // at step 1 (the policy is the reference) and not after two updates.
        XCTAssertEqual(first[0]["clip_ratio/region_mean"], 0)
        XCTAssertEqual(first[0]["kl"] ?? .nan, 0, accuracy: 1e-7)
        XCTAssertGreaterThan(first[3]["kl"] ?? 0, 1e-6, "the policy moved from the reference")
        for (k, n) in [2, 4].enumerated() {
            for (i, (a, b)) in zip(runs[0], runs[k + 1]).enumerated() {
                for key in GRPOCLITests.rolloutKeys + ["clip_ratio/low_mean", "clip_ratio/high_mean"] {
                    XCTAssertNotNil(a[key], "step \(i + 1): no \(key)")
                    XCTAssertEqual(a[key], b[key], "step \(i + 1) \(key), -n 1 vs -n \(n)")
                }
                for key in ["loss", "kl", "entropy", "grad_norm"] {
                    let x = a[key] ?? .nan, y = b[key] ?? .nan
                    XCTAssertEqual(x, y, accuracy: 1e-6 + 1e-4 * abs(x), "step \(i + 1) \(key), -n 1 vs -n \(n)")
                }
            }
        }
        // Inside generation 2 (step 4 reuses it) and at the end of generation 1.
        CLI.assertResumesBitExact(Self.args(["--objective-arg", "beta=0.04"]), every: 3, label: "gmpo-resume-3")
        CLI.assertResumesBitExact(Self.args(), every: 2, label: "gmpo-resume-2")
    }

    /// The held-out prompts' rollouts are scored with gmpo's own loss (eval_loss), as TRL's
    /// GMPOTrainer, a GRPOTrainer, evaluates; bad arguments name themselves.
    func testEvaluationAndRefusals() {
        let out = CLI.tempDir("gmpo-eval")
        let r = CLI.sftDist(Self.args(["--steps", "2", "--eval-examples", "4", "--eval-rollouts", "2", "--out", out]))
        XCTAssertEqual(r.status, 0, r.all)
        let evals = CLI.evalRows(out)
        XCTAssertNotNil(evals.last?["eval_loss"], "\(evals)")
        XCTAssertNotNil(evals.last?["eval_reward"], "\(evals)")
        for (arg, needle) in [("epsilon=-1", "epsilon (log space) must be a finite number >= 0"), ("loss_type=dapo", "unknown argument(s) loss_type; accepted: beta, epsilon, epsilon_high")] {
            let bad = CLI.sftDist(Self.args(["--objective-arg", arg, "--dry-run"]))
            XCTAssertEqual(bad.status, 1, bad.all)
            XCTAssertTrue(bad.stderr.contains(needle), bad.stderr)
            XCTAssertEqual(CLI.occurrences(of: "error:", in: bad.stderr), 1, bad.stderr)
        }
    }
}
