import Foundation
import XCTest

/// `scripts/slurm.sbatch` submitted to a real Slurm: both launchers (mpirun inside the
/// allocation, `srun --mpi=pmix`) give the losses of a plain `mpirun -n 2`, and the warning
/// before the time limit (SIGUSR1 to the batch shell) checkpoints, requeues the job and resumes
/// it bit-exactly. Skipped where `sinfo` does not answer (CI has no Slurm). README "Cluster
/// use" says how this machine ran it: Debian's slurm-wlm as a one-node cluster.
final class SlurmTests: XCTestCase {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../scripts/slurm.sbatch").standardized.path

    /// A node that can take two tasks now, else skip.
    func requireSlurm() throws {
        // %C: CPUs allocated/idle/other/total.
        let r = CLI.run(["sinfo", "-h", "-N", "-o", "%C"], seconds: 15)
        let usable = r.stdout.split(separator: "\n").contains { line in
            let f = line.split(separator: "/")
            return f.count == 4 && (Int(f[1]) ?? 0) >= 2
        }
        try XCTSkipUnless(r.status == 0 && usable, "no Slurm node with 2 free CPUs answers sinfo here")
    }

    /// The run directory: a recipe, and `bin/sft-dist` for the script's PATH.
    func workspace(_ name: String, steps: Int) throws -> String {
        let dir = CLI.tempDir(name)
        try FileManager.default.createDirectory(atPath: dir + "/bin", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir + "/bin/sft-dist", withDestinationPath: CLI.binary)
        try "model: tiny\ndata: builtin:tasks\nsteps: \(steps)\nbatch_size: 8\nmicro_batch_size: 4\nmax_length: 64\nsave_every: 100\neval_every: 0\neval_examples: 20\n"
            .write(toFile: dir + "/run.yaml", atomically: true, encoding: .utf8)
        return dir
    }

    /// `sbatch` on one node × 2 tasks × 1 CPU; returns the job id.
    func submit(_ dir: String, out: String, launcher: String) throws -> String {
        var env = ["PATH": dir + "/bin:" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
                   "SFT_DIST_OUT": dir + "/" + out, "SFT_DIST_LAUNCHER": launcher]
        if geteuid() == 0 { env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"; env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1" }
        let r = try BackgroundJob(["sbatch", "--parsable", "--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1", "--time=00:10:00",
                                   "--chdir=" + dir, "--job-name=sft-dist-test", Self.script, dir + "/run.yaml"],
                                  seconds: 30, environment: env).wait().result
        XCTAssertEqual(r.status, 0, r.all)
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ";").first.map(String.init) ?? ""
    }

    func field(_ name: String, job: String) -> String? {
        let r = CLI.run(["scontrol", "show", "job", job], seconds: 15)
        return r.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).first { $0.hasPrefix(name + "=") }.map { String($0.dropFirst(name.count + 1)) }
    }

    /// Waits for the job to end (any final state); returns it.
    func finish(_ job: String, seconds: Double = 300) -> String {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let state = field("JobState", job: job), !["PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED"].contains(state) { return state }
            Thread.sleep(forTimeInterval: 1)
        }
        _ = CLI.run(["scancel", job], seconds: 15)
        return "still running after \(Int(seconds)) s (cancelled)"
    }

    func log(_ dir: String, _ job: String) -> String {
        (try? String(contentsOfFile: "\(dir)/sft-dist-test_\(job).out", encoding: .utf8)) ?? "(no job output)"
    }

    func testBothLaunchersGiveTheLossesOfAPlainMpirun() throws {
        try requireSlurm()
        let dir = try workspace("slurm-launchers", steps: 30)
        let local = CLI.mpirun(2, ["train", "--config", dir + "/run.yaml", "--out", dir + "/local", "--quiet"])
        XCTAssertEqual(local.status, 0, local.all)
        var launchers = ["mpirun"]
        if CLI.run(["srun", "--mpi=list"], seconds: 15).all.contains("pmix") { launchers.append("srun") }
        for launcher in launchers {
            let job = try submit(dir, out: launcher, launcher: launcher)
            XCTAssertEqual(finish(job), "COMPLETED", "\(launcher): \(log(dir, job))")
            XCTAssertTrue(log(dir, job).contains("sft-dist: 2 ranks, 1 thread per rank"), log(dir, job))
            XCTAssertEqual(CLI.losses(dir + "/" + launcher), CLI.losses(dir + "/local"), "\(launcher): \(log(dir, job))")
            XCTAssertEqual(CLI.losses(dir + "/local").count, 30)
        }
    }

    /// Slurm's warning is `--signal=B:USR1@300`; `scancel --signal=USR1 --batch` sends the same
    /// signal to the same shell now.
    func testTheWarningBeforeTheTimeLimitRequeuesAndResumes() throws {
        try requireSlurm()
        let dir = try workspace("slurm-requeue", steps: 3000)
        let job = try submit(dir, out: "run", launcher: "mpirun")
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline && !log(dir, job).contains("step  200/") { Thread.sleep(forTimeInterval: 0.1) }
        XCTAssertEqual(CLI.run(["scancel", "--signal=USR1", "--batch", job], seconds: 15).status, 0)
        XCTAssertEqual(finish(job), "COMPLETED", log(dir, job))
        let text = log(dir, job)
        XCTAssertEqual(field("Restarts", job: job), "1", text)
        XCTAssertTrue(text.contains("sft-dist stopped before the time limit; requeueing job \(job)"), text)
        XCTAssertTrue(text.contains("resume: continuing after step "), text)
        let local = CLI.mpirun(2, ["train", "--config", dir + "/run.yaml", "--out", dir + "/local", "--quiet"], seconds: 240)
        XCTAssertEqual(local.status, 0, local.all)
        XCTAssertEqual(CLI.losses(dir + "/run"), CLI.losses(dir + "/local"))
        XCTAssertEqual(CLI.losses(dir + "/run").count, 3000)
    }
}
