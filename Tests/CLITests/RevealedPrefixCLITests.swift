import Foundation
import XCTest

/// UFT and Prefix-RFT end to end under real mpirun (GRPOCLITests' runs with `--objective uft` /
/// `prefix-rft`): hybrid rollouts (a revealed prefix of the prompt's demonstration, continued by
/// the model) and plain ones in the same step, identical at 1, 2 and 4 ranks (prefixes, rollouts,
/// rewards, loss); kill -9 after the first step of the second generation and `--resume latest`
/// trains on the stored hybrid rollouts with the schedule where it was; `--prompts` (prompts
/// without demonstrations) refused at start-up.
extension GRPOCLITests {
    static let revealKeys = ["reveal_schedule", "prefix_rollouts", "revealed_tokens"]

    /// Hint probability 0.6 → 0.3 over the 4 steps, so some prompts get a hint and some do not.
    func testUFTIsRankCountInvariant() throws {
        try assertRevealingRankCountInvariant("uft", ["--objective-arg", "hint_steps=4", "--objective-arg", "upper=0.6",
                                                      "--objective-arg", "lower=0.3"])
    }

    func testPrefixRFTIsRankCountInvariant() throws {
        try assertRevealingRankCountInvariant("prefix-rft", ["--scale-rewards", "none", "--objective-arg", "hybrid=2"])
    }

    func assertRevealingRankCountInvariant(_ objective: String, _ extra: [String]) throws {
        try assertRankCountInvariant(objective: objective, extra)
        let runs = [1, 2, 4].map { n in
            CLI.trainingRows(FileManager.default.temporaryDirectory.appendingPathComponent("sft-dist-tests-\(getpid())/\(objective)-n\(n)").path)
        }
        guard runs.allSatisfy({ $0.count == 4 }) else { return XCTFail("\(objective): \(runs.map(\.count)) rows") }
        Self.assertLogged(Self.revealKeys, in: runs[0], "\(objective) -n 1")
        for k in [1, 2] {
            for (i, (a, b)) in zip(runs[0], runs[k]).enumerated() {
                for key in Self.revealKeys { XCTAssertEqual(a[key], b[key], "\(objective) step \(i + 1) \(key), -n 1 vs -n \(k == 1 ? 2 : 4)") }
            }
        }
        // Hybrid and plain rollouts: Prefix-RFT's `hybrid` of every group; UFT's hint is per prompt
        // (all its rollouts share it), so some steps hold hinted and plain groups.
        let shares = runs[0].map { $0["prefix_rollouts"] ?? -1 }
        if objective == "prefix-rft" {
            XCTAssertEqual(shares, [0.5, 0.5, 0.5, 0.5], "2 of each prompt's 4 rollouts continue a prefix")
        } else {
            XCTAssertTrue(shares.contains { $0 > 0 && $0 < 1 }, "\(objective): \(shares)")
        }
        XCTAssertTrue(runs[0].allSatisfy { ($0["revealed_tokens"] ?? 0) > 0 }, "\(objective): no revealed tokens trained")
        // Steps 2 and 4 train the second slice of the generation sampled at steps 1 and 3: they log
        // the schedule its prefixes were planned at (they logged their own step's).
        let schedule = runs[0].map { $0["reveal_schedule"] ?? -1 }
        XCTAssertEqual([schedule[1], schedule[3]], [schedule[0], schedule[2]], "\(objective): \(schedule)")
    }

    func testUFTKillAndResumeLatest() throws {
        try assertKillAndResumeLatest(objective: "uft", extraKeys: Self.revealKeys + ["sft_loss", "grpo_loss"])
    }

    func testPrefixRFTKillAndResumeLatest() throws {
        try assertKillAndResumeLatest(objective: "prefix-rft", extraKeys: Self.revealKeys + ["prefix_kept", "entropy_threshold"])
    }

    /// Killed after step 3 (last checkpoint step 2, generation 0 done): the resumed run draws
    /// generation 1's prefixes itself, at the schedule's step 3, as the uninterrupted run did.
    func testRevealingObjectivesResumeBeforeANewGeneration() throws {
        for objective in ["uft", "prefix-rft"] {
            try assertKillAndResumeLatest(objective: objective, extraKeys: Self.revealKeys, lastKept: { _ in 2 })
        }
    }

    func testRevealingObjectivesRefusePromptsWithoutDemonstrations() throws {
        let dir = CLI.tempDir("reveal-bad")
        let prompts = dir + "/prompts.jsonl"
        try "{\"prompt\": \"add 1 2 =\", \"completion\": \" 3\"}\n".write(toFile: prompts, atomically: true, encoding: .utf8)
        let base = ["train", "--model", "tiny", "--reward", "exact", "--rollouts", "2", "--batch-size", "4", "--steps", "1",
                    "--eval-examples", "0", "--eval-every", "0", "--quiet", "--out", dir + "/out"]
        for objective in ["uft", "prefix-rft"] {
            let r = CLI.sftDist(base + ["--objective", objective, "--prompts", prompts])
            XCTAssertEqual(r.status, 1, r.all)
            XCTAssertTrue(r.stderr.contains("objective \(objective) continues a revealed prefix of each prompt's demonstration"), r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").filter { $0.contains("error") }.count, 1, r.stderr)
        }
        let r = CLI.sftDist(base + ["--objective", "prefix-rft", "--objective-arg", "hybrid=3"])
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertTrue(r.stderr.contains("hybrid (3) must be at most rollouts (2)"), r.stderr)
    }
}
