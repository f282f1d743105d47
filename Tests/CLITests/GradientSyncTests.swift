import Foundation
import XCTest

/// The overlapped, bucketed gradient allreduce gives the losses of the single blocking one,
/// and still issues matching collectives when some ranks have no example in a step (they
/// run no backward, so their buckets are all started by `finish`).
final class GradientSyncTests: XCTestCase {
    let base = ["train", "--model", "tiny", "--steps", "6", "--micro-batch-size", "1", "--eval-examples", "0",
                "--quiet", "--lr", "3e-3", "--warmup-steps", "1"]

    func testOverlapMatchesBlockingAllreduce() {
        var runs: [[Double]] = []
        for flag in ["--overlap-grad-sync", "--no-overlap-grad-sync"] {
            let out = CLI.tempDir("sync\(flag)")
            let r = CLI.mpirun(2, base + ["--batch-size", "4", flag, "--out", out])
            XCTAssertEqual(r.status, 0, r.all)
            runs.append(CLI.losses(out))
        }
        XCTAssertEqual(runs.map(\.count), [6, 6], "every run logs every step")
        for (a, b) in zip(runs[0], runs[1]) { XCTAssertEqual(a, b, accuracy: 1e-5 * abs(a)) }
    }

    func testRanksWithoutExamplesDoNotHang() {
        let one = CLI.tempDir("sync-small-1"), four = CLI.tempDir("sync-small-4")
        XCTAssertEqual(CLI.mpirun(1, base + ["--batch-size", "2", "--out", one]).status, 0)
        let r = CLI.mpirun(4, base + ["--batch-size", "2", "--out", four], seconds: 90)
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertEqual([CLI.losses(one).count, CLI.losses(four).count], [6, 6], "every run logs every step")
        for (a, b) in zip(CLI.losses(one), CLI.losses(four)) { XCTAssertEqual(a, b, accuracy: 1e-5 * abs(a)) }
    }
}
