import Foundation
import XCTest

/// The progress line redraws itself (`\r`, erase line) only for a person at a terminal. Under
/// mpirun a rank's stdout is mpirun's pseudo-terminal whatever mpirun's own stdout is, so the
/// launcher's is what counts — past a wrapper that shares the rank's (`mpirun … timeout
/// sft-dist …`, whose redraws went into a log file, one per step).
final class ProgressLogTests: XCTestCase {
    func testAWrappedRankLogsPlainLinesIntoAFile() throws {
        let dir = CLI.tempDir("progress-wrapped")
        let r = CLI.run(["mpirun"] + CLI.mpirunFlags + ["-n", "1", "timeout", "60", CLI.binary, "train", "--model", "tiny", "--steps", "30",
                                                       "--log-every", "10", "--eval-examples", "0", "--out", dir + "/run"])
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertFalse(r.stdout.contains("\r") || r.stdout.contains("\u{1B}["), r.stdout.debugDescription)
        XCTAssertEqual(r.stdout.split(separator: "\n").filter { $0.hasPrefix("step ") }.count, 4, r.stdout)   // 1, 10, 20, 30
    }
}
