import Foundation
import XCTest

/// SIGUSR1 during a scoring pass before the first step (`--precompute-ref-log-probs`;
/// token-clean's `scores=fixed`; a2po's stage 1) ends the run there, every rank after the same round, with
/// exit 75 and no checkpoint: nothing has trained since the start, and the scores do not outlive
/// the job anyway. `--resume latest` then goes on as if nothing had happened
/// (`Training/Job/ScoringStopped.swift`). It used to score to the end and stop after one step.
final class StopSignalScoringTests: XCTestCase {
    func checkpoints(_ out: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: out + "/checkpoints")) ?? []).filter { $0.hasPrefix("step-") }.sorted()
    }

    /// `args` into `out` under mpirun -n `n`, the last rank signalled after scoring round `round`
    /// (SFT_DIST_FAULT=usr1-scoring:R): exit 75, `ending` once on stderr, and the checkpoints `kept`.
    func assertStopsInScoring(_ n: Int, _ args: [String], out: String, round: Int, kept: [String], ending: String,
                              file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try BackgroundJob.mpirun(n, args + ["--out", out], seconds: 120, environment: ["SFT_DIST_FAULT": "usr1-scoring:\(round)"]).wait().result
        XCTAssertEqual(r.status, 75, r.all, file: file, line: line)
        XCTAssertEqual(CLI.occurrences(of: "sft-dist: stopped by SIGUSR1 during the scoring pass before step " + ending, in: r.stderr), 1, r.all, file: file, line: line)
        XCTAssertEqual(checkpoints(out), kept, file: file, line: line)
    }

    /// dpo at -n 2, in groups of one pair (76 training sequences: 19 rounds of 2 groups). The
    /// signal reaches the last rank only (SFT_DIST_FAULT=usr1-scoring:R, after round R): first
    /// in a new run, then in one resumed from step 2; the run that finishes gives the
    /// uninterrupted run's losses bit for bit.
    func testASignalDuringThePrecomputeStopsThereAndTheRunResumesExactly() throws {
        let dir = CLI.tempDir("stop-scoring")
        let data = DPOCLITests.writePairs(dir)
        let run = ["train", "--model", "tiny", "--data", data, "--objective", "dpo", "--batch-size", "4", "--steps", "4",
                   "--warmup-steps", "0", "--lr", "1e-2", "--eval-every", "0", "--eval-examples", "0", "--save-every", "2",
                   "--precompute-ref-log-probs", "--precompute-ref-batch-size", "1", "--quiet"]
        let reference = CLI.mpirun(2, run + ["--out", dir + "/ref"])
        XCTAssertEqual(reference.status, 0, reference.all)
        let out = dir + "/run"

        try assertStopsInScoring(2, run, out: out, round: 3, kept: [],
                                 ending: "1 (precompute_ref_log_probs, training sequences scored: 12 of 76): nothing trained, no checkpoint written; continue with --resume latest (exit 75)")
        XCTAssertTrue(CLI.losses(out).isEmpty, "no step ran")

        // --resume latest without a checkpoint starts anew; stopped after step 2 (usr1:2) with its checkpoint.
        let second = try BackgroundJob.mpirun(2, run + ["--out", out, "--resume", "latest"], seconds: 120, environment: ["SFT_DIST_FAULT": "usr1:2"]).wait().result
        XCTAssertEqual(second.status, 75, second.all)
        XCTAssertEqual(checkpoints(out), ["step-000002"])

        try assertStopsInScoring(2, run + ["--resume", "latest"], out: out, round: 2, kept: ["step-000002"],
                                 ending: "3 (precompute_ref_log_probs, training sequences scored: 8 of 76): nothing trained since the checkpoint of step 2, no checkpoint written; continue with --resume latest (exit 75)")
        XCTAssertEqual(CLI.losses(out).count, 2, "metrics.jsonl still ends at the checkpoint's step")

        // Another run's checkpoint resumed into a new --out, which holds none: the line names it.
        try assertStopsInScoring(2, run + ["--resume", dir + "/ref/checkpoints/step-000002"], out: dir + "/other", round: 2, kept: [],
                                 ending: "3 (precompute_ref_log_probs, training sequences scored: 8 of 76): nothing trained since the checkpoint of step 2, no checkpoint written; continue with --resume \(dir)/ref/checkpoints/step-000002 (exit 75)")

        let last = CLI.mpirun(2, run + ["--out", out, "--resume", "latest"])
        XCTAssertEqual(last.status, 0, last.all)
        XCTAssertEqual(CLI.losses(out), CLI.losses(dir + "/ref"))
        XCTAssertEqual(CLI.losses(out).count, 4)
    }

    /// token-clean scores=fixed at -n 1, in groups of micro_batch_size 2: the pass stops after
    /// its second round (4 training examples scored), and a rerun trains as one never stopped.
    func testASignalDuringTokenCleansScoringStopsThere() throws {
        let dir = CLI.tempDir("stop-scoring-token-clean")
        let refRun = CLI.sftDist(["train", "--model", "tiny", "--steps", "3", "--lr", "1e-2", "--eval-every", "0", "--eval-examples", "0",
                                  "--quiet", "--out", dir + "/base"])
        XCTAssertEqual(refRun.status, 0, refRun.all)
        let run = ["train", "--model", "tiny", "--objective", "token-clean", "--ref-model", dir + "/base/model", "--steps", "3",
                   "--batch-size", "4", "--micro-batch-size", "2", "--eval-every", "0", "--eval-examples", "0", "--quiet"]
        let whole = CLI.sftDist(run + ["--out", dir + "/whole"])
        XCTAssertEqual(whole.status, 0, whole.all)
        let out = dir + "/run"
        let stopped = try BackgroundJob.sftDist(run + ["--out", out], seconds: 120, environment: ["SFT_DIST_FAULT": "usr1-scoring:2"]).wait().result
        XCTAssertEqual(stopped.status, 75, stopped.all)
        XCTAssertEqual(CLI.occurrences(of: "sft-dist: stopped by SIGUSR1 during the scoring pass before step 1 (token-clean scores=fixed, training-set examples scored: 4 of ", in: stopped.stderr), 1, stopped.all)
        XCTAssertTrue(stopped.stderr.contains("): nothing trained, no checkpoint written; continue with --resume latest (exit 75)"), stopped.all)
        XCTAssertEqual(checkpoints(out), [])
        let rerun = CLI.sftDist(run + ["--out", out, "--resume", "latest"])
        XCTAssertEqual(rerun.status, 0, rerun.all)
        XCTAssertEqual(CLI.losses(out), CLI.losses(dir + "/whole"))
        XCTAssertEqual(CLI.losses(out).count, 3)
    }

    /// a2po's stage 1 at -n 2: 57 training prompts × 32 reference samples, in chunks of 16
    /// prompts; stopped after the second chunk, and the rerun equals an uninterrupted run.
    func testASignalDuringA2POsStageOneStopsThere() throws {
        let run = ["train", "--model", GRPOCLITests.warm, "--data", A2POCLITests.data, "--objective", "a2po", "--reward", "numeric",
                   "--reward-arg", "numeric.tolerance=0.3", "--batch-size", "8", "--micro-batch-size", "3", "--steps", "4",
                   "--steps-per-generation", "2", "--max-completion-length", "6", "--lr", "3e-3", "--warmup-steps", "0",
                   "--eval-examples", "0", "--eval-every", "0", "--objective-arg", "num_value_samples=32", "--quiet"]
        let dir = CLI.tempDir("stop-scoring-a2po")
        let whole = CLI.mpirun(2, run + ["--out", dir + "/whole"])
        XCTAssertEqual(whole.status, 0, whole.all)
        let out = dir + "/run"
        try assertStopsInScoring(2, run, out: out, round: 2, kept: [],
                                 ending: "1 (a2po stage 1, reference samples scored: 1024 of 1824): nothing trained, no checkpoint written; continue with --resume latest (exit 75)")
        let rerun = CLI.mpirun(2, run + ["--out", out, "--resume", "latest"])
        XCTAssertEqual(rerun.status, 0, rerun.all)
        XCTAssertEqual(CLI.losses(out), CLI.losses(dir + "/whole"))
        XCTAssertEqual(CLI.losses(out).count, 4)
    }
}
