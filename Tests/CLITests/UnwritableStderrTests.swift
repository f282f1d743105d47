import Foundation
import XCTest

/// A stderr that cannot be written (a log on a disk that filled, `2>/dev/full`) loses the
/// message but not the exit code: the write trapped, and every such run died of SIGILL
/// (exit 132) — a refused flag, a full disk's exit 6, SIGUSR1's resumable 75 alike, so a
/// job script that requeues on 75 gave up on a run whose checkpoint was written.
final class UnwritableStderrTests: XCTestCase {
    /// `args` run with stderr on /dev/full.
    func runWithFullStderr(_ args: [String], environment: [String: String] = [:], cwd: String) throws -> CLI.Result {
        try BackgroundJob(["/bin/sh", "-c", "cd \"$0\" && exec \"$@\" 2>/dev/full", cwd, CLI.binary] + args,
                          seconds: 60, environment: environment).wait().result
    }

    func testExitCodesSurviveAStderrThatCannotBeWritten() throws {
        let dir = CLI.tempDir("stderr-full")
        XCTAssertEqual(try runWithFullStderr(["train", "--model", "tiny", "--steps", "2", "--bogus"], cwd: dir).status, 1)
        let stop = try runWithFullStderr(["train", "--model", "tiny", "--steps", "3", "--eval-examples", "0", "--out", "run"],
                                         environment: ["SFT_DIST_FAULT": "usr1:0"], cwd: dir)
        XCTAssertEqual(stop.status, 75, stop.all)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/run/checkpoints/step-000001"))
        let resumed = CLI.sftDist(["train", "--model", "tiny", "--steps", "3", "--eval-examples", "0", "--quiet", "--out", "run",
                                   "--resume", "latest"], cwd: dir)
        XCTAssertEqual(resumed.status, 0, resumed.all)
    }
}
