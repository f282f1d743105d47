import Foundation
import XCTest

/// SRFT end to end under real mpirun (GRPOCLITests' runs with `--objective srft`): each step
/// holds 16 rollouts and the demonstrations of its 4 prompts, identical at 1, 2 and 4 ranks
/// (rollouts, rewards, entropy weights, loss); kill -9 after the first step of the second
/// generation and `--resume latest` trains on the stored rollouts and demonstrations.
extension GRPOCLITests {
    func testSRFTIsRankCountInvariant() throws {
        try assertRankCountInvariant(objective: "srft")
        // The -n 1 run's output (CLI.tempDir would empty it).
        let rows = CLI.trainingRows(FileManager.default.temporaryDirectory.appendingPathComponent("sft-dist-tests-\(getpid())/srft-n1").path)
        XCTAssertEqual(rows.count, 4)
        XCTAssertTrue(rows.allSatisfy { $0["expert_sequences"] == 4 }, "one demonstration per prompt: \(rows.map { $0["expert_sequences"] ?? -1 })")
    }

    func testSRFTKillAndResumeLatest() throws {
        try assertKillAndResumeLatest(objective: "srft", extraKeys: ["w_sft", "w_rl", "expert_sequences"])
    }

    func testSRFTRefusesSeparatePrompts() throws {
        let dir = CLI.tempDir("srft-bad")
        let prompts = dir + "/prompts.jsonl"
        try "{\"prompt\": \"add 1 2 =\", \"completion\": \" 3\"}\n".write(toFile: prompts, atomically: true, encoding: .utf8)
        let r = CLI.sftDist(["train", "--model", "tiny", "--objective", "srft", "--reward", "exact", "--rollouts", "2", "--batch-size", "4",
                             "--steps", "1", "--prompts", prompts, "--eval-examples", "0", "--eval-every", "0", "--quiet", "--out", dir + "/out"])
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertTrue(r.stderr.contains("objective srft puts each prompt's demonstration in its rollout group"), r.stderr)
    }
}
