import Foundation
import XCTest
@testable import Training

/// An external scorer is any program, so it may misbehave in every way a program can: flood
/// its output, never finish, leave children behind, end its lines with CRLF. Each case must
/// end within the scorer's timeout with one short line naming the example, and leave no
/// process of the scorer running.
final class ExternalScorerLimitsTests: XCTestCase {
    let items = [ScoringItem(prompt: "p", completion: "a", reference: "x", source: "d.jsonl:4"),
                 ScoringItem(prompt: "p", completion: "b", reference: "x", source: "d.jsonl:9")]

    private func run(_ cmd: String, timeout: Double) -> (scores: [Float]?, error: String?, seconds: Double) {
        let start = Date()
        do {
            let s = try ScorerRegistry.make(name: "command", args: ["cmd": cmd, "timeout": "\(timeout)"]).score(items)
            return (s, nil, Date().timeIntervalSince(start))
        } catch { return (nil, "\(error)", Date().timeIntervalSince(start)) }
    }

    private func alive(_ pid: pid_t) -> Bool {
        // A zombie still answers kill(0); /proc says whether it is really running.
        guard kill(pid, 0) == 0 else { return false }
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        return !stat.contains(") Z ")
    }

    private func pid(in file: String) -> pid_t? {
        for _ in 0..<50 {
            if let t = try? String(contentsOfFile: file, encoding: .utf8), let p = pid_t(t.trimmingCharacters(in: .whitespacesAndNewlines)) { return p }
            usleep(20_000)
        }
        return nil
    }

    func testCRLFLineEndsAreAccepted() {
        let r = run(#"cat >/dev/null; printf '1\r\n0.5\r\n'"#, timeout: 20)
        XCTAssertEqual(r.scores, [1, 0.5], r.error ?? "")
    }

    func testTimeoutKillsTheScorersWholeProcessGroup() throws {
        let pidFile = NSTemporaryDirectory() + "sft-dist-scorer-child-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: pidFile) }
        let r = run("sleep 30 & echo $! > \(pidFile); wait", timeout: 0.5)
        XCTAssertTrue(r.error?.contains("timed out after 0.5 s") == true, r.error ?? "accepted")
        XCTAssertTrue(r.error?.contains("d.jsonl:4") == true, r.error ?? "")
        let child = try XCTUnwrap(pid(in: pidFile))
        var waited = 0
        while alive(child) && waited < 20 { usleep(50_000); waited += 1 }
        XCTAssertFalse(alive(child), "the scorer's child \(child) still runs after the timeout")
        if alive(child) { kill(child, SIGKILL) }
    }

    /// Closing stdout and stderr and then running on: nothing left to read, but the
    /// timeout still applies.
    func testTimeoutHoldsWhenTheScorerClosesItsOutputs() {
        let r = run("exec >&- 2>&-; sleep 15", timeout: 0.5)
        XCTAssertTrue(r.error?.contains("timed out") == true, r.error ?? "accepted")
        XCTAssertLessThan(r.seconds, 5, "the timeout did not end the batch on time")
    }

    /// The scorer answered and exited, but a background child keeps its stdout open: the batch
    /// is done when the scorer exits, and the child goes with it.
    func testBackgroundChildHoldingStdoutDoesNotStallTheBatch() throws {
        let pidFile = NSTemporaryDirectory() + "sft-dist-scorer-bg-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: pidFile) }
        let r = run("cat >/dev/null; echo 1; echo 0; sleep 15 & echo $! > \(pidFile)", timeout: 10)
        XCTAssertEqual(r.scores, [1, 0], r.error ?? "")
        XCTAssertLessThan(r.seconds, 5)
        if let child = pid(in: pidFile) {
            var waited = 0
            while alive(child) && waited < 20 { usleep(50_000); waited += 1 }
            XCTAssertFalse(alive(child), "the scorer's background child still runs")
            if alive(child) { kill(child, SIGKILL) }
        } else { XCTFail("no pid file") }
    }

    /// A 50 MB line and 2 million lines for a batch of 2: refused as soon as the bound is
    /// passed, with a message that does not echo the output.
    func testOutputIsBoundedPerLineAndPerBatch() {
        let long = run(#"cat >/dev/null; head -c 50000000 /dev/zero | tr '\0' 1"#, timeout: 30)
        XCTAssertTrue(long.error?.contains("longer than") == true, long.error ?? "accepted")
        XCTAssertTrue(long.error?.contains("d.jsonl:4") == true, long.error ?? "")
        XCTAssertLessThan(long.error?.utf8.count ?? 0, 300)
        let many = run("cat >/dev/null; yes 1 | head -n 2000000", timeout: 30)
        XCTAssertTrue(many.error?.contains("more than") == true, many.error ?? "accepted")
        XCTAssertLessThan(many.error?.utf8.count ?? 0, 300)
    }

    /// The deadline is computed in nanoseconds: an infinite or absurd timeout is refused, not a trap.
    func testAbsurdTimeoutsAreRefused() {
        for t in ["inf", "1e300", "nan", "0", "-1", "86401"] {
            XCTAssertThrowsError(try ScorerRegistry.make(name: "command", args: ["cmd": "true", "timeout": t]), t) {
                XCTAssertTrue("\($0)".contains("--scorer-timeout"), "\($0)")
            }
        }
        XCTAssertNoThrow(try ScorerRegistry.make(name: "command", args: ["cmd": "true", "timeout": "86400"]))
    }

    func testGarbageIsNamedButNotEchoedWhole() {
        let r = run(#"cat >/dev/null; echo 1; head -c 900 /dev/zero | tr '\0' x; echo"#, timeout: 20)
        XCTAssertTrue(r.error?.contains("line 2") == true && r.error?.contains("d.jsonl:9") == true, r.error ?? "accepted")
        XCTAssertLessThan(r.error?.utf8.count ?? 0, 300, r.error ?? "")
    }
}
