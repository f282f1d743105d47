import Foundation
import XCTest

/// grpo's TRL loss arguments through the CLI — `importance_sampling_level=sequence` (GSPO, arXiv
/// 2507.18071), `delta` (two-sided clipping), `top_entropy_quantile` (arXiv 2506.01939) — the
/// same at `mpirun -n 1` and `-n 2`, on the off-policy second step of each generation, where the
/// ratio moves from 1. The loss and gradient against TRL's are GRPOReferenceTests'; the finite
/// differences ObjectiveGradientTests'.
final class GRPOLossArgsCLITests: XCTestCase {
    /// ε = 0.01 and δ = 1.005, so that on this short run the sequences' ratios are clipped and
    /// capped (at ε 0.2 and δ 1.5 nothing was: a review), with rewards that differ within groups.
    func testSequenceLevelRatiosAreRankCountInvariant() throws {
        let base = GRPOCLITests.grpo(["--objective-arg", "importance_sampling_level=sequence", "--objective-arg", "loss_type=grpo",
                                      "--objective-arg", "epsilon=0.01", "--reward-arg", "format.pattern=(?s).*[aeiou].*"])
        let args = base + ["--objective-arg", "delta=1.005"]
        let runs = CLI.trainingRows(atRanks: [1, 2], args, label: "gspo", seconds: 240)
        let uncapped = CLI.trainingRows(atRanks: [1], base, label: "gspo-no-delta", seconds: 240)[0]
        guard runs.allSatisfy({ $0.count == 4 }), uncapped.count == 4 else { return XCTFail("\(runs) \(uncapped)") }
        XCTAssertTrue(runs[0].contains { ($0["clip_ratio/region_mean"] ?? 0) > 0 }, "some rollout's ratio is clipped: \(runs[0])")
        XCTAssertTrue(zip(runs[0], uncapped).contains { $0["grad_norm"] != $1["grad_norm"] }, "δ caps some ratio: \(runs[0]) \(uncapped)")
        for (a, b) in zip(runs[0], runs[1]) {
            let step = Int(a["step"]!)
            for key in ["loss", "ratio", "grad_norm", "entropy"] {
                let x = a[key] ?? .nan
                XCTAssertEqual(x, b[key] ?? .nan, accuracy: 1e-6 + 1e-4 * abs(x), "step \(step) \(key), -n 1 vs -n 2")
            }
            XCTAssertEqual(a["reward"], b["reward"], "step \(step): the same rollouts")
        }
        // A generation's first step is on-policy (ratio 1 up to the decode's rounding), its second not.
        XCTAssertEqual(runs[0][0]["ratio"] ?? .nan, 1, accuracy: 1e-4)
        XCTAssertGreaterThan(abs((runs[0][1]["ratio"] ?? 1) - 1), 1e-4, "\(runs[0][1])")
    }

    /// The entropy quantile is taken over the whole step (a statistics pass gathered from every
    /// rank), and over the evaluation's own rollouts when grpo evaluates.
    func testTopEntropyQuantileIsRankCountInvariantInTrainingAndEvaluation() throws {
        // A vowel in the answer: rewards that differ within groups, so the evaluations' losses are not all 0.
        var args = GRPOCLITests.grpo(["--objective-arg", "top_entropy_quantile=0.2", "--eval-rollouts", "3",
                                      "--reward-arg", "format.pattern=(?s).*[aeiou].*"]).filter { $0 != "--quiet" }
        for (flag, value) in [("--eval-every", "2"), ("--eval-examples", "4")] { args[args.firstIndex(of: flag)! + 1] = value }
        var runs: [[[String: Double]]] = [], evals: [[[String: Double]]] = []
        for n in [1, 2] {
            let out = CLI.tempDir("top-entropy-\(n)")
            let r = CLI.mpirun(n, args + ["--out", out], seconds: 240)
            XCTAssertEqual(r.status, 0, r.all)
            XCTAssertTrue(r.stdout.contains("top_entropy_quantile=0.2"), r.stdout)
            runs.append(CLI.trainingRows(out)); evals.append(CLI.evalRows(out))
        }
        guard runs.allSatisfy({ $0.count == 4 }), evals.allSatisfy({ $0.count == 3 }) else { return XCTFail("\(runs) \(evals)") }
        XCTAssertTrue(evals[0].contains { ($0["eval_loss"] ?? 0) != 0 }, "an evaluation with a signal: \(evals[0])")
        XCTAssertGreaterThan(runs[0].filter { ($0["grad_norm"] ?? 0) > 0 }.count, 1, "steps with a signal: \(runs[0])")
        for (a, b) in zip(runs[0] + evals[0], runs[1] + evals[1]) {
            let step = Int(a["step"]!)
            for key in ["loss", "grad_norm", "eval_loss", "entropy", "eval_entropy"] where a[key] != nil {
                let x = a[key] ?? .nan
                XCTAssertEqual(x, b[key] ?? .nan, accuracy: 1e-6 + 1e-4 * abs(x), "step \(step) \(key), -n 1 vs -n 2")
            }
        }
    }

    /// loss_type=cispo (MiniMax-M1): the weight clipped at ε_max = epsilon_high, here 1.001 so the
    /// off-policy steps clip some; `cispo_clip_ratio` in place of `clip_ratio/*`, as TRL logs it.
    func testCISPOIsRankCountInvariant() throws {
        let args = GRPOCLITests.grpo(["--objective-arg", "loss_type=cispo", "--objective-arg", "epsilon_high=1.001",
                                      "--reward-arg", "format.pattern=(?s).*[aeiou].*"])
        let runs = CLI.trainingRows(atRanks: [1, 2], args, label: "cispo", seconds: 240)
        guard runs.allSatisfy({ $0.count == 4 }) else { return XCTFail("\(runs)") }
        XCTAssertTrue(runs[0].contains { ($0["cispo_clip_ratio"] ?? 0) > 0 }, "some weight is clipped: \(runs[0])")
        XCTAssertTrue(runs[0].allSatisfy { $0["clip_ratio/region_mean"] == nil }, "cispo logs its own clip figure")
        for (a, b) in zip(runs[0], runs[1]) {
            let step = Int(a["step"]!)
            for key in ["loss", "grad_norm", "cispo_clip_ratio", "ratio"] {
                let x = a[key] ?? .nan
                XCTAssertEqual(x, b[key] ?? .nan, accuracy: 1e-6 + 1e-4 * abs(x), "step \(step) \(key), -n 1 vs -n 2")
            }
        }
    }

    /// SAPO's soft gate (arXiv 2511.20347), LUSPO's length-scaled sequence term (arXiv
    /// 2602.05261) and VESPO's Gamma weight (arXiv 2602.10693): the same at -n 1 and -n 2,
    /// off-policy steps included; sapo logs no clip figure, vespo its mean weight, as TRL.
    func testSAPOLUSPOAndVESPOAreRankCountInvariant() throws {
        for (label, extra) in [("sapo", ["loss_type=sapo", "sapo_temperature_neg=2"]),
                               ("luspo", ["loss_type=luspo", "importance_sampling_level=sequence", "epsilon=0.01"]),
                               ("vespo", ["loss_type=vespo"])] {
            let args = GRPOCLITests.grpo(extra.flatMap { ["--objective-arg", $0] } + ["--reward-arg", "format.pattern=(?s).*[aeiou].*"])
            let runs = CLI.trainingRows(atRanks: [1, 2], args, label: label, seconds: 240)
            guard runs.allSatisfy({ $0.count == 4 }) else { return XCTFail("\(label): \(runs)") }
            XCTAssertGreaterThan(runs[0].filter { ($0["grad_norm"] ?? 0) > 0 }.count, 1, "\(label): steps with a signal")
            if label == "sapo" { XCTAssertTrue(runs[0].allSatisfy { $0["clip_ratio/region_mean"] == nil }, "sapo logs no clip figure") }
            // VESPO's φ is 1 on a generation's first step up to the decode's rounding, below 1 off it.
            if label == "vespo" { XCTAssertLessThan(runs[0][1]["vespo/phi_seq_mean"] ?? 1, 0.999999, "\(runs[0][1])") }
            for (a, b) in zip(runs[0], runs[1]) {
                for key in ["loss", "grad_norm", "ratio"] + (label == "vespo" ? ["vespo/phi_seq_mean"] : []) {
                    let x = a[key] ?? .nan
                    XCTAssertEqual(x, b[key] ?? .nan, accuracy: 1e-6 + 1e-4 * abs(x), "\(label) step \(a["step"] ?? 0) \(key), -n 1 vs -n 2")
                }
            }
        }
    }

    func testBadArgumentsAreOneLine() throws {
        let cases: [([String], String)] = [
            (["importance_sampling_level=seq"], "importance_sampling_level must be token or sequence (got seq)"),
            (["delta=0.9"], "delta must be > 1"), (["top_entropy_quantile=1.5"], "top_entropy_quantile must be in [0, 1], got 1.5"),
            (["loss_type=cispo", "importance_sampling_level=sequence"], "loss_type cispo weighs each token by its own clipped ratio"),
            (["loss_type=luspo"], "loss_type luspo scales GSPO's per-rollout term by the rollout's length: use importance_sampling_level sequence"),
            (["loss_type=sapo", "sapo_temperature_neg=0"], "sapo_temperature_pos and sapo_temperature_neg must be > 0"),
            (["sapo_temperature_pos=2"], "sapo_temperature_pos sets loss_type sapo's gate; with loss_type dapo it does nothing"),
            (["loss_type=vespo", "importance_sampling_level=sequence"], "loss_type vespo weighs each rollout by its own sequence ratio: use importance_sampling_level token"),
            (["loss_type=grpo", "vespo_k_neg=2"], "vespo_k_neg sets loss_type vespo's weight; with loss_type grpo it does nothing"),
            (["loss_type=sapo", "delta=2"], "delta sets PPO's clip, which loss_type sapo replaces; it does nothing there"),
            (["loss_type=vespo", "epsilon=0.1"], "epsilon sets PPO's clip, which loss_type vespo replaces"),
            // cispo caps its weight at epsilon_high: delta did nothing there and was accepted.
            (["loss_type=cispo", "delta=2"], "delta sets PPO's clip, which loss_type cispo replaces; it does nothing there"),
            (["loss_type=cispo", "epsilon=0.3", "epsilon_high=5"], "epsilon sets PPO's clip, which loss_type cispo replaces; beside epsilon_high it does nothing there"),
            (["entropy_coef=1e39"], "entropy_coef=1e39 is beyond float32's range"),
            (["use_adaptive_entropy=true", "entropy_target=0x1p-7"], "entropy_target=0x1p-7 is not a decimal number")]
        for (objectiveArgs, message) in cases {
            let r = CLI.sftDist(GRPOCLITests.grpo(objectiveArgs.flatMap { ["--objective-arg", $0] } + ["--out", CLI.tempDir("gspo-bad")]), seconds: 60)
            XCTAssertEqual(r.status, 1, r.all)
            XCTAssertTrue(r.stderr.contains(message), r.stderr)
        }
        let relift = CLI.sftDist(GRPOCLITests.grpo(["--objective-arg", "loss_type=cispo", "--out", CLI.tempDir("gspo-bad")], objective: "relift"), seconds: 60)
        XCTAssertEqual(relift.status, 1, relift.all)
        XCTAssertTrue(relift.stderr.contains("objective relift: loss_type must be one of grpo, bnpo, dr_grpo, dapo (got cispo)"), relift.stderr)
    }
}
