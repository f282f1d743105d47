import Foundation
import XCTest

/// Every objective trains under real mpirun and gives the same per-step losses with one and
/// two ranks (global normalisers, statistics gathered in rank order, OTR sampling keyed on
/// global sequence ids).
final class ObjectiveRankTests: XCTestCase {
    static let objectives = ["nll", "dft", "p", "power", "threshold", "asft", "psft", "talr", "iwsft",
                             "otr", "token-clean", "forgetting"]

    func testEveryObjectiveIsRankCountInvariant() throws {
        // A reference model that differs from the initial weights, for the objectives whose
        // token scores compare against one.
        let refRun = CLI.tempDir("obj-ref")
        let base = ["train", "--model", "tiny", "--batch-size", "6", "--micro-batch-size", "2",
                    "--eval-examples", "0", "--quiet", "--checksum-every", "2", "--lr", "3e-3", "--warmup-steps", "1"]
        XCTAssertEqual(CLI.sftDist(base + ["--steps", "8", "--out", refRun]).status, 0)
        var failures: [String] = []
        for name in Self.objectives {
            var args = base + ["--steps", "5", "--objective", name]
            if ["token-clean", "forgetting", "iwsft", "asft"].contains(name) { args += ["--ref-model", refRun + "/model"] }
            if name == "psft" { args += ["--objective-arg", "refresh=2"] }
            var losses: [[Double]] = []
            for n in [1, 2] {
                let out = CLI.tempDir("obj-\(name)-\(n)")
                let r = CLI.mpirun(n, args + ["--out", out], seconds: 90)
                if r.status != 0 { failures.append("\(name) -n \(n): exit \(r.status)\n\(r.all)"); break }
                losses.append(CLI.losses(out))
            }
            guard losses.count == 2 else { continue }
            XCTAssertEqual(losses[0].count, 5, name)
            XCTAssertTrue(losses[0].allSatisfy(\.isFinite), "\(name): \(losses[0])")
            for (i, (a, b)) in zip(losses[0], losses[1]).enumerated() where abs(a - b) > 1e-5 * max(abs(a), 1e-3) {
                failures.append("\(name): step \(i + 1) loss \(a) (-n 1) vs \(b) (-n 2)")
            }
        }
        XCTAssertTrue(failures.isEmpty, failures.joined(separator: "\n"))
    }
}
