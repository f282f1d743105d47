import Foundation
import XCTest

/// grpo's `entropy_coef` with TRL's adaptive control (`use_adaptive_entropy`, Skywork-OR1 §3)
/// and `off_policy_mask_threshold` (DeepSeek-V3.2 §3.1) through the CLI: each step's logged
/// coefficient follows the controller's rule from the logged entropies, the bonus changes the
/// loss by exactly −c·H̄ from the second step on, the same at `mpirun -n 1` and `-n 2`, and a
/// run resumed at step 2 goes on with the controller's state. The loss and gradient against
/// TRL's are GRPOReferenceTests'; the finite differences ObjectiveGradientTests'.
final class GRPOEntropyBonusCLITests: XCTestCase {
    static let vowels = ["--reward-arg", "format.pattern=(?s).*[aeiou].*"]
    /// Up by 0.02 per step while the entropy is at or below 5 nats (this model's are 1.3–2.2),
    /// capped at 0.06; from 0.01.
    static let adaptive = ["use_adaptive_entropy=true", "entropy_coef=0.01", "entropy_target=5", "entropy_coef_delta=0.02",
                           "entropy_coef_max=0.06"].flatMap { ["--objective-arg", $0] }

    func testAdaptiveEntropyCoefficientAcrossRanksAndResume() throws {
        let args = GRPOCLITests.grpo(Self.adaptive + Self.vowels)
        let outs = [1, 2].map { CLI.tempDir("adaptive-entropy-n\($0)") }
        let runs = zip([1, 2], outs).map { n, out -> [[String: Double]] in
            let r = CLI.mpirun(n, args + ["--out", out, "--save-every", "2"], seconds: 240)
            XCTAssertEqual(r.status, 0, "-n \(n): \(r.all)")
            return CLI.trainingRows(out)
        }
        let plain = CLI.trainingRows(atRanks: [1], GRPOCLITests.grpo(Self.vowels), label: "no-entropy-bonus", seconds: 240)[0]
        guard runs.allSatisfy({ $0.count == 4 }), plain.count == 4 else { return XCTFail("\(runs) \(plain)") }
        // The controller's rule, read from the logged figures: c_k = min(c_{k−1} + 0.02, 0.06) while H̄_k ≤ 5.
        var c = 0.01
        for row in runs[0] {
            let h = row["entropy"] ?? .nan
            XCTAssertLessThanOrEqual(h, 5)
            c = min(c + 0.02, 0.06)
            // In Double as TRL's Python floats: 0.03, 0.05, not float32's 0.0299999993.
            XCTAssertEqual(row["entropy_coef"] ?? .nan, c, accuracy: 1e-12, "step \(row["step"] ?? 0)")
        }
        // Step 1 applies no bonus (no entropy measured yet); step 2 reuses step 1's rollouts
        // from the same weights, so its loss is the plain run's minus c_1·H̄_2.
        XCTAssertEqual(runs[0][0]["loss"], plain[0]["loss"], "step 1: no bonus yet")
        let expected = (plain[1]["loss"] ?? .nan) - (runs[0][0]["entropy_coef"] ?? .nan) * (runs[0][1]["entropy"] ?? .nan)
        XCTAssertEqual(runs[0][1]["loss"] ?? .nan, expected, accuracy: 1e-5, "step 2: the plain loss − c·H̄")
        // TRL's policy_loss: the loss without the bonus, the plain run's at step 2.
        XCTAssertEqual(runs[0][1]["policy_loss"] ?? .nan, plain[1]["loss"] ?? .nan, accuracy: 1e-6, "step 2's policy_loss")
        for (a, b) in zip(runs[0], runs[1]) {
            for key in ["loss", "grad_norm", "entropy", "entropy_coef"] {
                let x = a[key] ?? .nan
                XCTAssertEqual(x, b[key] ?? .nan, accuracy: 1e-6 + 1e-4 * abs(x), "step \(a["step"] ?? 0) \(key), -n 1 vs -n 2")
            }
        }
        // Resumed at -n 2 from -n 1's step-2 checkpoint: the coefficient and the last entropy come back.
        let resumed = CLI.tempDir("adaptive-entropy-resumed")
        let r = CLI.mpirun(2, args + ["--out", resumed, "--resume", outs[0] + "/checkpoints/step-000002"], seconds: 240)
        XCTAssertEqual(r.status, 0, r.all)
        let after = CLI.trainingRows(resumed).suffix(2)
        XCTAssertEqual(after.count, 2)
        for (a, b) in zip(after, runs[0].suffix(2)) {
            for key in ["loss", "entropy_coef"] {
                let y = b[key] ?? .nan
                XCTAssertEqual(a[key] ?? .nan, y, accuracy: 1e-6 + 1e-4 * abs(y), "step \(b["step"] ?? 0) \(key) after resuming at step 2")
            }
        }
    }

    /// δ = 1e-4: a generation's first step is on-policy (its drift is the decode's rounding, so
    /// nothing is masked and the loss is the plain run's), its second masks the A < 0 rollouts
    /// whose sampler drifted past δ; the same at -n 1 and -n 2.
    func testOffPolicyMaskActsOnlyOffPolicyAndIsRankCountInvariant() throws {
        let args = GRPOCLITests.grpo(["--objective-arg", "off_policy_mask_threshold=0.0001"] + Self.vowels)
        let runs = CLI.trainingRows(atRanks: [1, 2], args, label: "off-policy-mask", seconds: 240)
        let plain = CLI.trainingRows(atRanks: [1], GRPOCLITests.grpo(Self.vowels), label: "no-off-policy-mask", seconds: 240)[0]
        guard runs.allSatisfy({ $0.count == 4 }), plain.count == 4 else { return XCTFail("\(runs) \(plain)") }
        XCTAssertEqual(runs[0][0]["off_policy_mask_ratio"], 0)
        // At δ = 0 with every step on-policy (a generation per step) nothing is masked: the drift
        // of rollouts the current weights sampled is 0, not the decode's rounding (which masked
        // 6 % of step 1's rollouts before), and the held-out rollouts' likewise.
        var onPolicy = GRPOCLITests.grpo(["--objective-arg", "off_policy_mask_threshold=0", "--steps-per-generation", "1", "--eval-rollouts", "3"] + Self.vowels)
            .filter { $0 != "--quiet" }
        for (flag, value) in [("--eval-every", "2"), ("--eval-examples", "4")] { onPolicy[onPolicy.firstIndex(of: flag)! + 1] = value }
        let out = CLI.tempDir("off-policy-mask-on-policy")
        let r = CLI.mpirun(2, onPolicy + ["--out", out], seconds: 240)
        XCTAssertEqual(r.status, 0, r.all)
        let rows = CLI.trainingRows(out), evals = CLI.evalRows(out)
        XCTAssertEqual(rows.count, 4)
        XCTAssertFalse(evals.isEmpty)
        XCTAssertTrue(rows.allSatisfy { $0["off_policy_mask_ratio"] == 0 }, "\(rows)")
        XCTAssertTrue(evals.allSatisfy { $0["eval_off_policy_mask_ratio"] == 0 }, "\(evals)")
        XCTAssertEqual(runs[0][0]["loss"], plain[0]["loss"], "step 1 is on-policy")
        XCTAssertGreaterThan(runs[0][1]["off_policy_mask_ratio"] ?? 0, 0, "step 2 masks some rollout: \(runs[0][1])")
        XCTAssertNotEqual(runs[0][1]["loss"], plain[1]["loss"])
        for (a, b) in zip(runs[0], runs[1]) {
            for key in ["loss", "grad_norm", "ratio", "off_policy_mask_ratio"] {
                let x = a[key] ?? .nan
                XCTAssertEqual(x, b[key] ?? .nan, accuracy: 1e-6 + 1e-4 * abs(x), "step \(a["step"] ?? 0) \(key), -n 1 vs -n 2")
            }
        }
    }

    func testBadArgumentsAreOneLine() throws {
        let cases: [([String], String)] = [
            (["entropy_target=0.5"], "entropy_target sets the adaptive entropy control; it does nothing without use_adaptive_entropy=true"),
            (["use_adaptive_entropy=true", "entropy_coef_min=0.5", "entropy_coef_max=0.1"], "entropy_coef_min (0.5) must be at most entropy_coef_max (0.1)"),
            (["use_adaptive_entropy=yes"], "use_adaptive_entropy must be true or false (got yes)"),
            (["off_policy_mask_threshold=inf"], "off_policy_mask_threshold=inf is not a finite number"),
            (["use_adaptive_entropy=true", "entropy_coef_delta=-1"], "entropy_coef_delta and entropy_target must be >= 0")]
        for (objectiveArgs, message) in cases {
            let r = CLI.sftDist(GRPOCLITests.grpo(objectiveArgs.flatMap { ["--objective-arg", $0] } + ["--out", CLI.tempDir("entropy-bad")]), seconds: 60)
            XCTAssertEqual(r.status, 1, r.all)
            XCTAssertTrue(r.stderr.contains(message), r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").filter { $0.contains("error") }.count, 1, r.stderr)
        }
    }
}
