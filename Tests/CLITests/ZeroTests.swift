import Foundation
import XCTest

/// `--zero 1|2` under real mpirun: AdamW's moments (and with 2 the gradients) sharded over
/// ranks give the unsharded losses up to float summation order, replicas stay identical (the
/// run's own checksum check), checkpoints hold the gathered state (resume at another rank
/// count or setting), and a kill -9 then `--resume latest` at the same rank count is bit-exact.
final class ZeroTests: XCTestCase {
    static let steps = 16
    let base = ["train", "--model", "tiny", "--steps", "\(ZeroTests.steps)", "--batch-size", "8", "--micro-batch-size", "2",
                "--lr", "3e-3", "--warmup-steps", "2", "--eval-every", "0", "--eval-examples", "4", "--max-new-tokens", "2",
                "--checksum-every", "2", "--quiet"]

    func run(_ n: Int, _ extra: [String], _ label: String) -> [Double] {
        let out = CLI.tempDir("zero-\(label)")
        let r = CLI.mpirun(n, base + extra + ["--out", out])
        XCTAssertEqual(r.status, 0, "\(label):\n\(r.all)")
        let losses = CLI.losses(out)
        XCTAssertEqual(losses.count, Self.steps, label)
        return losses
    }

    func assertClose(_ a: [Double], _ b: [Double], _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, label, file: file, line: line)
        for (i, (x, y)) in zip(a, b).enumerated() {
            XCTAssertLessThanOrEqual(abs(x - y), 1e-5 * abs(x), "\(label): step \(i + 1) loss \(x) vs \(y)", file: file, line: line)
        }
    }

    func testZeroOneAndTwoGiveTheUnshardedLossesAtTwoAndFourRanks() {
        for n in [2, 4] {
            let plain = run(n, [], "n\(n)-plain")
            assertClose(plain, run(n, ["--zero", "1"], "n\(n)-zero1"), "-n \(n) --zero 1")
            assertClose(plain, run(n, ["--zero", "2"], "n\(n)-zero2"), "-n \(n) --zero 2")
        }
        // Without overlapping the sync with backward, the same shards are reduced after it.
        assertClose(run(2, [], "n2-plain-b"), run(2, ["--zero", "2", "--no-overlap-grad-sync"], "n2-zero2-nooverlap"),
                    "-n 2 --zero 2, no overlap")
    }

    /// `--zero` without mpirun (1 rank) runs, as a recipe tried locally before the cluster job,
    /// and says that nothing is sharded; under mpirun it says nothing.
    func testZeroAtOneRankSaysNothingIsSharded() {
        let note = "--zero 1 at 1 rank has nothing to shard"
        let alone = CLI.sftDist(base.filter { $0 != "--quiet" } + ["--steps", "2", "--zero", "1", "--out", CLI.tempDir("zero-alone")])
        XCTAssertEqual(alone.status, 0, alone.all)
        XCTAssertTrue(alone.all.contains(note), alone.all)
        let two = CLI.mpirun(2, base.filter { $0 != "--quiet" } + ["--steps", "2", "--zero", "1", "--out", CLI.tempDir("zero-two")])
        XCTAssertEqual(two.status, 0, two.all)
        XCTAssertFalse(two.all.contains("nothing to shard"), two.all)
    }

    /// ZeRO-2 reduce-scatters every micro-batch: at 1 rank (4 micro-batches) and at 3 ranks,
    /// where ranks 0 and 1 have 2 micro-batches and rank 2 one (it joins the second
    /// reduce-scatter round with a zero gradient; without that the job would hang).
    func testZeroTwoWithUnevenMicroBatchCountsGivesTheUnshardedLosses() {
        for n in [1, 3] {
            assertClose(run(n, [], "n\(n)-plain-acc"), run(n, ["--zero", "2"], "n\(n)-zero2-acc"), "-n \(n) --zero 2, accumulating")
        }
    }

    /// ZeRO-2's catch-up rounds (`Trainer.joinRemainingRounds`): padded micro-batches of single
    /// sequences differ by at most one between ranks (the last round is `syncGradients`'), so
    /// packing makes a rank run two or more fewer than another here — long examples fill a
    /// packed row each, short ones share one. With seed 3's
    /// batches, at -n 2 rank 1 has one micro-batch against rank 0's four in a step (and rank 0
    /// fewer than rank 1 in others), at -n 3 rank 2 catches up in three steps (seen with a
    /// temporary trace in `joinRemainingRounds`). Ranks short of micro-batches join the extra
    /// reduce-scatter rounds with a zero gradient (without that the collectives mismatch and the
    /// watchdog ends the job). Losses equal `--zero 0` at the same rank count and across rank
    /// counts, up to summation order.
    func testZeroTwoCatchUpRoundsWithPackedMicroBatchesGiveTheUnshardedLosses() throws {
        let dir = CLI.tempDir("zero-catch-up")
        let data = dir + "/data.jsonl"
        let rows = (0..<12).map { i in
            i % 2 == 0 ? "{\"prompt\": \"copy \(String(repeating: "abcdefghij", count: 2)) \(i) =\", \"completion\": \" \(String(repeating: "abcdefghij", count: 3))\"}"
                       : "{\"prompt\": \"add \(i) 1 =\", \"completion\": \" \(i + 1)\"}"
        }
        try (rows.joined(separator: "\n") + "\n").write(toFile: data, atomically: true, encoding: .utf8)
        let packed = ["train", "--model", "tiny", "--data", data, "--heldout", data, "--packing", "--max-length", "64",
                      "--batch-size", "8", "--micro-batch-size", "1", "--steps", "8", "--seed", "3", "--lr", "3e-3", "--warmup-steps", "0",
                      "--eval-every", "0", "--eval-examples", "0", "--watchdog", "30", "--quiet"]
        func run(_ n: Int, _ zero: String) -> [Double] {
            let out = dir + "/n\(n)-zero\(zero)"
            let r = CLI.mpirun(n, packed + ["--zero", zero, "--out", out], seconds: 150)
            XCTAssertEqual(r.status, 0, "-n \(n) --zero \(zero):\n\(r.all)")
            return CLI.losses(out)
        }
        let one = run(1, "0")
        XCTAssertEqual(one.count, 8)
        for n in [2, 3] {
            let zero2 = run(n, "2")
            assertClose(run(n, "0"), zero2, "-n \(n) packed, --zero 2 vs --zero 0")
            assertClose(one, zero2, "packed --zero 2, -n 1 vs -n \(n)")
        }
    }

    /// kill -9 of a 2-rank --zero 2 job, then --resume latest: the uninterrupted losses bit for bit.
    func testKillNineThenResumeUnderZeroIsBitExact() throws {
        try assertKillNineThenResumeIsBitExact(zero: "2")
    }

    /// The same under --zero 1 (AdamW's moments sharded, gradients allreduced whole): each
    /// rank's moment shard must reach the checkpoint and come back to the rank that owns it.
    func testKillNineThenResumeUnderZeroOneIsBitExact() throws {
        try assertKillNineThenResumeIsBitExact(zero: "1")
    }

    func assertKillNineThenResumeIsBitExact(zero: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let base = self.base.map { $0 == "\(Self.steps)" ? "30" : $0 }   // --steps 30
        let expectedOut = CLI.tempDir("zero\(zero)-kill-reference")
        let ref = CLI.mpirun(2, base + ["--zero", zero, "--out", expectedOut])
        XCTAssertEqual(ref.status, 0, ref.all, file: file, line: line)
        let expected = CLI.losses(expectedOut)
        XCTAssertEqual(expected.count, 30, file: file, line: line)
        let out = CLI.tempDir("zero\(zero)-kill")
        let args = base + ["--zero", zero, "--out", out, "--save-every", "4"]
        let job = try BackgroundJob.mpirun(2, args, seconds: 120)
        XCTAssertTrue(job.waitUntil(seconds: 100) { CLI.stepsLogged(out) >= 10 }, "the job never got to step 10", file: file, line: line)
        job.killAll(marker: out)
        let (killed, _) = job.wait()
        XCTAssertNotEqual(killed.status, 0, "the job finished before it could be killed", file: file, line: line)
        XCTAssertFalse(CLI.checkpoints(out).published.isEmpty, "no checkpoint before the kill", file: file, line: line)
        let resumed = CLI.mpirun(2, args.filter { $0 != "--quiet" } + ["--resume", "latest"])
        XCTAssertEqual(resumed.status, 0, resumed.all, file: file, line: line)
        XCTAssertTrue(resumed.stdout.contains("resume: continuing after step"), resumed.stdout, file: file, line: line)
        let got = CLI.losses(out)
        XCTAssertEqual(CLI.loggedSteps(out), Array(1...30), file: file, line: line)
        for (i, (a, b)) in zip(got, expected).enumerated() where a.bitPattern != b.bitPattern {
            XCTFail("--zero \(zero), step \(i + 1): loss \(a) after resume, \(b) uninterrupted", file: file, line: line)
            return
        }
    }

    /// A checkpoint of a 2-rank --zero 1 run holds the gathered moments: it continues on 4
    /// ranks with --zero 2, and on 1 rank without ZeRO, with the losses of a run that never
    /// stopped, up to summation order.
    func testCheckpointResumesAtAnotherRankCountAndZeroSetting() {
        let straightOut = CLI.tempDir("zero-straight-saved")
        let plain = CLI.mpirun(1, base + ["--out", straightOut, "--save-every", "8"])
        XCTAssertEqual(plain.status, 0, plain.all)
        let straight = CLI.losses(straightOut)
        XCTAssertEqual(straight.count, Self.steps)
        let first = CLI.tempDir("zero-first")
        let r = CLI.mpirun(2, base + ["--zero", "1", "--out", first, "--save-every", "8"])
        XCTAssertEqual(r.status, 0, r.all)
        let checkpoint = first + "/checkpoints/step-000008"
        // A --zero 1 checkpoint under --zero 2 at 4 ranks and unsharded at 1; an unsharded one
        // (1 rank) under --zero 2 at 2 ranks.
        let unsharded = straightOut + "/checkpoints/step-000008"
        for (n, zero, checkpoint) in [(4, "2", checkpoint), (1, "0", checkpoint), (2, "2", unsharded)] {
            let out = CLI.tempDir("zero-second-\(n)")
            let resumed = CLI.mpirun(n, base.filter { $0 != "--quiet" } + ["--zero", zero, "--out", out, "--resume", checkpoint])
            XCTAssertEqual(resumed.status, 0, resumed.all)
            XCTAssertTrue(resumed.stdout.contains("resume: continuing after step 8 of \(Self.steps)"), resumed.stdout)
            // Steps 1-8 come from the checkpoint's run's metrics.jsonl, 9 on from the resumed run.
            XCTAssertEqual(CLI.loggedSteps(out), Array(1...Self.steps))
            assertClose(Array(straight.suffix(from: 8)), Array(CLI.losses(out).suffix(from: 8)), "resumed on \(n) ranks with --zero \(zero)")
        }
    }

    func testZeroRefusesWhatCannotShard() {
        for (extra, message) in [(["--optimizer", "sgd"], "--zero 1: optimizer sgd cannot shard its state (only adamw can)"),
                                 (["--l2-init", "0.1"], "--zero 1 with --l2-init: the penalty is added by the unsharded update, and ZeRO's ranks each update their own shard")] {
            let out = CLI.tempDir("zero-refused")
            let r = CLI.mpirun(2, base + ["--zero", "1", "--out", out] + extra, seconds: 60)
            XCTAssertEqual(r.status, 1, r.all)
            XCTAssertEqual(CLI.occurrences(of: message, in: r.all), 1, r.all)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/model"), "nothing half-written")
        }
        let r = CLI.sftDist(base + ["--zero", "3", "--out", CLI.tempDir("zero-3")])
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertEqual(CLI.occurrences(of: "sft-dist: error: --zero must be an integer in 0…2 (got 3)", in: r.all), 1, r.all)
    }
}
