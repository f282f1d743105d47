import Foundation
import XCTest

/// An external scorer that hangs under a multi-rank eval: the job ends within the scorer
/// timeout (plus generation), with one message naming the example, and no scorer process
/// (nor a child of one) is left running on any rank.
final class ScorerFailureTests: XCTestCase {
    private func runningScorers(_ marker: String) -> [String] {
        let ps = CLI.run(["ps", "-eo", "pid,args"], seconds: 10).stdout
        return ps.split(separator: "\n").map(String.init).filter { $0.contains(marker) && !$0.contains("ps -eo") }
    }

    func testHungScorerEndsTheJobOnTimeAndLeavesNoProcess() throws {
        let dir = CLI.tempDir("scorer-hang")
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--batch-size", "2", "--eval-every", "0",
                                    "--quiet", "--out", dir], seconds: 60).status, 0)
        let marker = "97.\(getpid())"
        let start = Date()
        let r = CLI.mpirun(2, ["eval", "--model", dir + "/model", "--data", dir + "/data/heldout.jsonl", "--examples", "4",
                               "--max-new-tokens", "2", "--scorer", "command", "--scorer-cmd", "sleep \(marker) & wait",
                               "--scorer-timeout", "2"], seconds: 90)
        let seconds = Date().timeIntervalSince(start)
        XCTAssertNotEqual(r.status, 0, r.all)
        XCTAssertNotEqual(r.status, 124, "hung: \(r.all)")
        XCTAssertLessThan(seconds, 45, r.all)
        XCTAssertEqual(CLI.occurrences(of: "timed out after 2 s", in: r.all), 1, r.all)
        XCTAssertTrue(r.all.contains("heldout.jsonl:"), r.all)
        usleep(500_000)
        let left = runningScorers(marker)
        XCTAssertEqual(left, [], "scorer processes left running")
        for line in left { if let pid = Int32(line.split(separator: " ").first ?? "") { kill(pid, SIGKILL) } }
    }
}
