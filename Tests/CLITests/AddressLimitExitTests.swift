import Foundation
import XCTest

/// Under an address-space limit (`ulimit -v`, SGE's h_vmem) the thread OpenBLAS starts when
/// the library loads can fail to map its work buffer and retry for ever; `exit`'s handlers
/// then waited for it (OpenBLAS's finalizer joins its threads), so a command that had printed
/// its result or its error never ended — an argument error, `export` of a model too large for
/// the limit, even `--help`. And `merge-lora`'s first product spun for a buffer of its own.
/// Every case must end well inside the time given, with exit 0 or one line. Against the
/// binary before (2026-12-05): `merge`, `export` and `--help` at 200,000 KiB, `merge-lora` at
/// 200,000 and 500,000 KiB, never ended.
final class AddressLimitExitTests: XCTestCase {
    /// `sft-dist args` under `ulimit -v kib`, with two BLAS threads (OpenBLAS starts a thread of
    /// its own only when it may use more than one); the result and the seconds it took.
    func limited(_ kib: Int, _ args: [String]) -> (CLI.Result, Double) {
        let started = Date()
        let r = CLI.run(["bash", "-c", "ulimit -v \(kib); OPENBLAS_NUM_THREADS=2 exec \"$@\"", "bash", CLI.binary] + args,
                        seconds: 60)
        return (r, Date().timeIntervalSince(started))
    }

    func testCommandsEndUnderAnAddressSpaceLimit() throws {
        let dir = CLI.tempDir("limit-exit")
        let run = dir + "/lora"
        let trained = CLI.sftDist(["train", "--model", "gpt2-mini", "--lora-rank", "8", "--steps", "1", "--quiet", "--out", run])
        XCTAssertEqual(trained.status, 0, trained.all)
        let base = run + "/model-base", adapter = run + "/model"

        // The limits step through merge-lora's start-up, so that each is reached at another
        // allocation (which one depends on the machine's libraries; the outcome must not).
        var merged = 0, refused = 0
        for kib in [200_000, 300_000, 400_000, 500_000, 600_000, 700_000, 900_000] {
            let out = dir + "/merged-\(kib)"
            let (r, seconds) = limited(kib, ["merge-lora", "--model", base, "--adapter", adapter, "--out", out])
            let label = "merge-lora under ulimit -v \(kib): \(r.all)"
            XCTAssertLessThan(seconds, 20, label)
            XCTAssertFalse(r.all.contains("Fatal error") || r.all.contains("Program crashed"), label)
            if r.status == 0 {
                merged += 1
                XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/model.safetensors"), label)
                continue
            }
            refused += 1
            XCTAssertEqual(r.status, 5, label)
            XCTAssertEqual(CLI.occurrences(of: "sft-dist: error:", in: r.stderr), 1, label)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "half-written: \(label)")
        }
        XCTAssertGreaterThanOrEqual(merged, 1, "no limit left room for merge-lora")
        XCTAssertGreaterThanOrEqual(refused, 2, "the limits no longer reach merge-lora's allocations")

        // Under the tightest limit: an argument error, a model the limit cannot hold, help.
        let cases: [([String], Set<Int32>, String)] = [
            (["merge", base, base, "--out", dir + "/m"], [1], "are one model directory"),
            (["export", "--model", base, "--out", dir + "/e"], [0, 5], "e"),
            (["--help"], [0], "OVERVIEW:"),
        ]
        for (args, codes, text) in cases {
            let (r, seconds) = limited(200_000, args)
            let label = "\(args.joined(separator: " ")) under ulimit -v 200000: \(r.all)"
            XCTAssertLessThan(seconds, 20, label)
            XCTAssertTrue(codes.contains(r.status), label)
            XCTAssertTrue(r.all.contains(text), label)
            if r.status != 0 { XCTAssertEqual(CLI.occurrences(of: "sft-dist: error:", in: r.stderr), 1, label) }
        }
    }
}
