import Foundation
import XCTest

/// `--multi-objective-aggregation normalize_then_sum` (TRL's `multi_objective_aggregation`;
/// GDPO) through the binary: GRPOCLITests' two reward functions (numeric and format=0.1), the
/// same figures at -n 1 and -n 2, the same rollouts as sum_then_normalize at step 1 with
/// another loss, a resume in the middle of a generation, SRFT's groups; and the settings it
/// does not combine with refused in one line. Its advantages against TRL's are
/// RewardAggregationReferenceTests'.
final class RewardAggregationCLITests: XCTestCase {
    static let normalise = ["--multi-objective-aggregation", "normalize_then_sum"]
    /// format 1 for answers of at most three characters: with the default pattern every
    /// rollout of the warm model gets 1 and only numeric would vary.
    static let brief = ["--reward-arg", "format.pattern=.{1,3}"]

    func testNormalizeThenSumIsRankCountInvariantAndResumesExactly() throws {
        let args = GRPOCLITests.grpo(Self.normalise + Self.brief + ["--save-every", "1"])
        let runs = CLI.trainingRows(atRanks: [1, 2], args, label: "moa", seconds: 240)
        let summed = CLI.trainingRows(atRanks: [1], GRPOCLITests.grpo(Self.brief), label: "moa-sum", seconds: 240)[0]
        guard runs.allSatisfy({ $0.count == 4 }), summed.count == 4 else { return XCTFail("\(runs) \(summed)") }
        XCTAssertTrue(runs[0].contains { ($0["grad_norm"] ?? 0) > 1e-4 }, "no gradient in any step")
        for key in ["rewards/numeric/std", "rewards/format/std"] {
            XCTAssertTrue(runs[0].contains { ($0[key] ?? 0) > 0 }, "\(key): the function never varied")
        }
        for (i, (a, b)) in zip(runs[0], runs[1]).enumerated() {
            for key in GRPOCLITests.rolloutKeys {
                XCTAssertNotNil(a[key], "step \(i + 1): no \(key)")
                XCTAssertEqual(a[key], b[key], "step \(i + 1) \(key), -n 1 vs -n 2")
            }
            for key in ["loss", "grad_norm"] {
                let x = a[key] ?? .nan, y = b[key] ?? .nan
                XCTAssertEqual(x, y, accuracy: 1e-6 + 1e-4 * abs(x), "step \(i + 1) \(key), -n 1 vs -n 2")
            }
        }
        // Step 1: the same weights draw the same rollouts and rewards; the advantages differ,
        // so the loss does. A group silent under normalize_then_sum (every function's rewards
        // equal) is silent under the sum too, not the other way round.
        let (a, s) = (runs[0][0], summed[0])
        for key in ["reward", "rewards/numeric/mean", "rewards/format/mean", "completions/mean_length"] {
            XCTAssertEqual(a[key], s[key], "step 1 \(key): the same rollouts")
        }
        XCTAssertGreaterThan(abs((a["loss"] ?? .nan) - (s["loss"] ?? .nan)), 1e-4, "step 1 loss: \(a["loss"] ?? .nan) under both aggregations")
        XCTAssertLessThanOrEqual(a["frac_reward_zero_std"] ?? .nan, s["frac_reward_zero_std"] ?? .nan)
        // Resumed at -n 2 after step 3, in the middle of the second generation: step 4 trains on
        // the checkpointed rollouts with the same advantages.
        let out = CLI.tempDir("moa-resumed")
        let first = FileManager.default.temporaryDirectory.path + "/sft-dist-tests-\(getpid())/moa-1"
        let r = CLI.mpirun(2, args + ["--out", out, "--resume", first + "/checkpoints/step-000003"], seconds: 240)
        XCTAssertEqual(r.status, 0, r.all)
        let resumed = CLI.trainingRows(out)
        XCTAssertEqual(resumed.map { $0["step"] ?? -1 }, [1, 2, 3, 4])
        if let after = resumed.last, let before = runs[0].last {
            for key in ["loss", "grad_norm"] + GRPOCLITests.rolloutKeys {
                let x = before[key] ?? .nan
                XCTAssertEqual(after[key] ?? .nan, x, accuracy: 1e-6 + 1e-4 * abs(x), "step 4 \(key), resumed vs uninterrupted")
            }
        }
    }

    /// SRFT's groups hold the demonstration: each function is z-scored over the G + 1.
    func testSRFTGroupsAreRankCountInvariant() throws {
        let runs = CLI.trainingRows(atRanks: [1, 2], GRPOCLITests.grpo(Self.normalise + Self.brief, objective: "srft"), label: "moa-srft", seconds: 240)
        guard runs.allSatisfy({ $0.count == 4 }) else { return XCTFail("\(runs)") }
        for (i, (a, b)) in zip(runs[0], runs[1]).enumerated() {
            for key in GRPOCLITests.rolloutKeys + ["expert_sequences"] { XCTAssertEqual(a[key], b[key], "srft step \(i + 1) \(key)") }
            let x = a["loss"] ?? .nan
            XCTAssertEqual(b["loss"] ?? .nan, x, accuracy: 1e-6 + 1e-4 * abs(x), "srft step \(i + 1) loss, -n 1 vs -n 2")
        }
    }

    /// One line and exit 1 for what it cannot act on; a recipe's scale_rewards under the flag is
    /// set aside (written to recipe.yaml as a comment), not refused.
    func testWhatItDoesNotCombineWithIsRefused() throws {
        let dir = CLI.tempDir("moa-refused")
        let scored = dir + "/scored.jsonl"
        try ("{\"prompt\": \"add 1 2 =\", \"completion\": \" 3\", \"reward\": 1, \"group\": 1}\n"
             + "{\"prompt\": \"add 1 2 =\", \"completion\": \" 4\", \"reward\": 0, \"group\": 1}\n").write(toFile: scored, atomically: true, encoding: .utf8)
        let train = ["train", "--model", "tiny", "--dry-run", "--out", dir + "/out"]
        let grpo = train + ["--objective", "grpo", "--reward", "task", "--reward", "format=0.1"]
        let cases: [([String], String)] = [
            (grpo + Self.normalise + ["--scale-rewards", "batch"],
             "--scale-rewards batch has no effect with --multi-objective-aggregation normalize_then_sum, which divides each reward function by its group's std"),
            (grpo + Self.normalise + ["--scale-rewards", "group"], "--scale-rewards group has no effect with --multi-objective-aggregation normalize_then_sum"),
            (grpo + ["--multi-objective-aggregation", "normalise"],
             "--multi-objective-aggregation must be one of sum_then_normalize, normalize_then_sum (got normalise)"),
            (train + Self.normalise, "--multi-objective-aggregation is read by the objectives that sample rollouts"),
            (train + ["--data", scored, "--scored-data", "--objective", "grpo"] + Self.normalise,
             "--multi-objective-aggregation normalize_then_sum combines the rewards of several reward functions; scored_data's rows carry one reward each"),
            (train + ["--self-train", "superhf", "--objective", "superhf", "--reward", "task"] + Self.normalise,
             "--multi-objective-aggregation is read by the objectives that sample rollouts"),
        ]
        for (args, needle) in cases {
            let r = CLI.sftDist(args)
            XCTAssertEqual(r.status, 1, "\(args): \(r.all)")
            XCTAssertEqual(CLI.occurrences(of: needle, in: r.stderr), 1, "\(args): \(r.all)")
        }
        try "objective: grpo\nrewards: [task, format=0.1]\nscale_rewards: none\n".write(toFile: dir + "/r.yaml", atomically: true, encoding: .utf8)
        let file = CLI.sftDist(train + ["--config", dir + "/r.yaml"] + Self.normalise)
        XCTAssertEqual(file.status, 0, file.all)
        // --dry-run prints the recipe.yaml the run would write.
        XCTAssertTrue(file.stdout.contains("multi_objective_aggregation: normalize_then_sum\n") && file.stdout.contains("# scale_rewards: none"), file.stdout)
        XCTAssertEqual(CLI.sftDist(train + ["--config", dir + "/r.yaml", "--multi-objective-aggregation", "sum_then_normalize"]).status, 0)
    }
}
