import Foundation
import XCTest

/// SIGUSR1 — a batch system's warning before a time limit, passed on by mpirun — makes
/// `train` save a checkpoint after the step it is in and stop with exit 75, every rank after
/// the same step; `--resume latest` then continues as if nothing had happened
/// (`Training/Run/StopSignal.swift`).
final class StopSignalTests: XCTestCase, LabRunning {
    let tiny = ["train", "--model", "tiny", "--steps", "12", "--batch-size", "8", "--eval-every", "0", "--quiet"]

    func checkpoints(_ out: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: out + "/checkpoints")) ?? []).filter { $0.hasPrefix("step-") }.sorted()
    }

    /// The signal reaches the last rank only, after step 5 (SFT_DIST_FAULT=usr1:5): both ranks
    /// stop there, the checkpoint holds step 5, and the resumed run gives the uninterrupted
    /// run's losses — bit for bit at the same rank count, up to summation order at another.
    /// usr1:0 sends it before the model and data are loaded (the handler is installed before
    /// MPI starts): the run stops after step 1.
    func testOneRanksSignalStopsEveryRankAfterThatStepAndTheRunResumesExactly() throws {
        let dir = CLI.tempDir("stop-signal")
        let reference = CLI.mpirun(2, tiny + ["--out", dir + "/ref"])
        XCTAssertEqual(reference.status, 0, reference.all)

        for (ranks, resumeRanks, saveEvery, signalled) in [(2, 2, "0", 5), (2, 2, "4", 4), (2, 1, "0", 7), (2, 2, "0", 0)] {
            let out = dir + "/run-\(ranks)-\(saveEvery)-\(signalled)", at = max(signalled, 1)
            let job = try BackgroundJob.mpirun(ranks, tiny + ["--save-every", saveEvery, "--out", out], seconds: 120,
                                               environment: ["SFT_DIST_FAULT": "usr1:\(signalled)"])
            let stopped = job.wait().result
            XCTAssertEqual(stopped.status, 75, stopped.all)
            let line = "sft-dist: stopped by SIGUSR1 after step \(at) of 12: checkpoint \(out)/checkpoints/step-\(String(format: "%06d", at))/, no final model; continue with --resume latest (exit 75)"
            XCTAssertEqual(CLI.occurrences(of: line, in: stopped.stderr), 1, stopped.all)
            XCTAssertEqual(checkpoints(out).last, String(format: "step-%06d", at), "\(checkpoints(out))")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/model"), "no final model after a stop")
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/loss.svg"))
            XCTAssertEqual(CLI.losses(out).count, at, "metrics.jsonl ends at the step the run stopped after")

            let resumed = CLI.mpirun(resumeRanks, tiny + ["--save-every", saveEvery, "--resume", "latest", "--out", out])
            XCTAssertEqual(resumed.status, 0, resumed.all)
            let (got, expected) = (CLI.losses(out), CLI.losses(dir + "/ref"))
            XCTAssertEqual(got.count, 12)
            if resumeRanks == ranks {
                XCTAssertEqual(got, expected, "stopped at \(at), resumed on \(resumeRanks) ranks")
            } else {
                for (g, e) in zip(got, expected) { XCTAssertEqual(g, e, accuracy: 1e-5, "stopped at \(at) on \(ranks), resumed on \(resumeRanks)") }
            }
        }
    }

    /// train is also what runs without a subcommand: it takes the signal from the start too.
    func testTheDefaultSubcommandStopsToo() throws {
        let out = CLI.tempDir("stop-default") + "/run"
        let job = try BackgroundJob.sftDist(Array(tiny.dropFirst()) + ["--out", out], seconds: 60, environment: ["SFT_DIST_FAULT": "usr1:0"])
        let r = job.wait().result
        XCTAssertEqual(r.status, 75, r.all)
        XCTAssertEqual(checkpoints(out), ["step-000001"])
    }

    /// From outside, as a batch system does it: SIGUSR1 to mpirun, which passes it on.
    func testSIGUSR1ToMpirunStopsTheJobWithACheckpoint() throws {
        let out = CLI.tempDir("stop-mpirun") + "/run"
        let long = ["train", "--model", "tiny", "--steps", "1000000", "--batch-size", "8", "--eval-every", "0", "--quiet", "--out", out]
        let job = try BackgroundJob.mpirun(2, long, seconds: 120)
        XCTAssertTrue(job.waitUntil(seconds: 60) { CLI.losses(out).count >= 3 }, "the run started")
        let mpirun = BackgroundJob.descendants(of: job.process.processIdentifier).filter {
            (try? String(contentsOfFile: "/proc/\($0)/comm", encoding: .utf8))?.hasPrefix("mpirun") == true
        }
        XCTAssertEqual(mpirun.count, 1)
        for p in mpirun { kill(p, SIGUSR1) }
        let (r, seconds) = job.wait()
        XCTAssertEqual(r.status, 75, r.all)
        XCTAssertLessThan(seconds, 100, "stopped, not timed out")
        XCTAssertEqual(CLI.occurrences(of: "stopped by SIGUSR1 after step", in: r.stderr), 1, r.all)
        let steps = CLI.losses(out).count
        XCTAssertEqual(checkpoints(out), [String(format: "step-%06d", steps)], "one checkpoint, at the last step logged")
    }

    /// scripts/slurm.sbatch as Slurm runs it ahead of the time limit (`--signal=B:USR1@300`:
    /// SIGUSR1 to the batch shell only): the script passes it to mpirun, the run checkpoints and
    /// exits 75, and the script requeues the job (`scontrol`, here a stand-in that records its
    /// arguments) and exits 75. No Slurm here: mpirun takes its two slots from a hostfile.
    func testTheSlurmScriptPassesTheWarningOnAndRequeues() throws {
        let dir = CLI.tempDir("stop-slurm"), bin = dir + "/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: bin + "/sft-dist", withDestinationPath: CLI.binary)
        try "#!/bin/sh\necho \"$@\" >> \(dir)/scontrol.log\n".write(toFile: bin + "/scontrol", atomically: true, encoding: .utf8)
        chmod(bin + "/scontrol", 0o755)
        try "localhost slots=2\n".write(toFile: dir + "/hosts", atomically: true, encoding: .utf8)
        try "model: tiny\nsteps: 1000000\nbatch_size: 8\neval_every: 0\n".write(toFile: dir + "/r.yaml", atomically: true, encoding: .utf8)
        let out = dir + "/out"
        let job = try BackgroundJob(["bash", Self.repo + "/scripts/slurm.sbatch", dir + "/r.yaml", "--quiet"], seconds: 120, cwd: dir, environment: [
            "PATH": bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"), "SLURM_JOB_ID": "42", "SLURM_CPUS_PER_TASK": "1",
            "SFT_DIST_OUT": out, "OMPI_MCA_orte_default_hostfile": dir + "/hosts",
            "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"])
        XCTAssertTrue(job.waitUntil(seconds: 60) { CLI.losses(out).count >= 3 }, "the run started")
        let shell = BackgroundJob.descendants(of: job.process.processIdentifier).filter {
            (try? String(contentsOfFile: "/proc/\($0)/comm", encoding: .utf8))?.hasPrefix("bash") == true
        }
        XCTAssertEqual(shell.count, 1)
        for p in shell { kill(p, SIGUSR1) }
        // A script that died of the signal would leave mpirun and its ranks running, holding
        // the job's pipes: once the script has ended, none may be left (a test never hangs).
        _ = job.waitUntil(seconds: 100) { false }
        let left = BackgroundJob.ranks(marker: out)
        for rank in left { kill(rank.pid, SIGKILL) }
        XCTAssertTrue(left.isEmpty, "ranks left running after the script ended: \(left)")
        let (r, seconds) = job.wait()
        XCTAssertEqual(r.status, 75, r.all)
        XCTAssertLessThan(seconds, 100, "stopped, not timed out")
        XCTAssertEqual(CLI.occurrences(of: "stopped by SIGUSR1 after step", in: r.stderr), 1, r.all)
        XCTAssertEqual(try String(contentsOfFile: dir + "/scontrol.log", encoding: .utf8), "requeue 42\n")
        XCTAssertEqual(checkpoints(out), [String(format: "step-%06d", CLI.losses(out).count)])
    }
}

/// Every other command keeps no checkpoint: SIGUSR1, a batch system's warning that mpirun passes
/// on, ended eval without a word (exit 138) and lost its work. It goes on, saying so once.
final class StopSignalOtherCommandsTests: XCTestCase {
    func testEvalGoesOnAfterSIGUSR1AndSaysSoOnce() throws {
        let dir = CLI.tempDir("usr1-eval")
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--steps", "2", "--eval-examples", "0", "--quiet", "--out", "run"], cwd: dir).status, 0)
        XCTAssertEqual(CLI.sftDist(["make-data", "--out", dir + "/big.jsonl", "--count", "3000", "--seed", "3"]).status, 0)
        let job = try BackgroundJob.mpirun(2, ["eval", "--model", dir + "/run/model", "--data", dir + "/big.jsonl", "--examples", "3000",
                                               "--samples", "16", "--max-new-tokens", "16"], seconds: 120)
        let pid = job.process.processIdentifier
        func named(_ name: String) -> [Int32] {
            BackgroundJob.descendants(of: pid).filter { (try? String(contentsOfFile: "/proc/\($0)/comm", encoding: .utf8))?.hasPrefix(name) == true }
        }
        XCTAssertTrue(job.waitUntil(seconds: 60) { named("sft-dist").count == 2 }, "the ranks started")
        Thread.sleep(forTimeInterval: 1)   // past main(), where the handler is installed
        let mpirun = named("mpirun")
        XCTAssertEqual(mpirun.count, 1)
        for p in mpirun { kill(p, SIGUSR1) }
        let (r, _) = job.wait()
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertEqual(CLI.occurrences(of: "sft-dist: note: SIGUSR1 received: only train checkpoints and stops on it; this command goes on", in: r.stderr), 1, r.all)
        XCTAssertTrue(r.stdout.contains("calibration (ECE)"), r.all)
    }
}
