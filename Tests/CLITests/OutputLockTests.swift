import Foundation
import XCTest

/// Two runs given one `--out` are refused: the second names the first's pid and touches
/// nothing (the two wrote into each other's metrics.jsonl and checkpoints, and one died
/// mid-save). The lock goes with the process, so after the first is killed a run starts.
final class OutputLockTests: XCTestCase {
    func testASecondRunOnTheSameOutputIsRefusedUntilTheFirstEnds() throws {
        let out = CLI.tempDir("lock")
        let args = ["train", "--model", "tiny", "--steps", "100000", "--batch-size", "4", "--micro-batch-size", "2", "--eval-every", "0",
                    "--eval-examples", "0", "--quiet", "--save-every", "50", "--out", out]
        let first = try BackgroundJob.sftDist(args, seconds: 120)
        XCTAssertTrue(first.waitUntil(seconds: 60) { CLI.stepsLogged(out) >= 2 }, "the first run never logged a step")
        let second = CLI.sftDist(["train", "--model", "tiny", "--steps", "2", "--eval-examples", "0", "--out", out, "--quiet"])
        XCTAssertEqual(second.status, 6, second.all)
        XCTAssertTrue(second.stderr.contains("\(out): another sft-dist run (pid "), second.stderr)
        XCTAssertEqual(CLI.occurrences(of: "sft-dist: error", in: second.stderr), 1, second.stderr)
        XCTAssertTrue(first.isRunning, "the second run disturbed the first")
        // Killed only once its first checkpoint is saved: on a loaded machine it was killed
        // before step 50, left no checkpoint, and the refusal below did not happen.
        XCTAssertTrue(first.waitUntil(seconds: 90) {
            ((try? FileManager.default.contentsOfDirectory(atPath: out + "/checkpoints")) ?? []).contains { $0.hasPrefix("step-") }
        }, "the first run never saved a checkpoint")
        first.killAll(marker: out)
        _ = first.wait()
        let third = ["train", "--model", "tiny", "--steps", "1", "--eval-examples", "0", "--quiet", "--out", out]
        // Past the lock, a fresh run meets the killed run's checkpoints (kept for --resume).
        let refused = CLI.sftDist(third)
        XCTAssertEqual(refused.status, 1, refused.all)
        XCTAssertTrue(refused.stderr.contains("holds a previous run's checkpoints"), refused.all)
        try FileManager.default.removeItem(atPath: out + "/checkpoints")
        let started = CLI.sftDist(third)
        XCTAssertEqual(started.status, 0, started.all)
    }
}
