import Foundation
import XCTest

/// Checkpoints under real kills: `kill -9` of a running job, and SIGKILL at each moment of a
/// checkpoint save; then `--resume latest` must reproduce the per-step losses of a run that
/// was never interrupted, bit for bit at the same rank count.
final class ResumeTests: XCTestCase {
    static let steps = 24
    let base = ["train", "--model", "tiny", "--steps", "\(ResumeTests.steps)", "--batch-size", "8", "--micro-batch-size", "2",
                "--lr", "3e-3", "--warmup-steps", "3", "--eval-examples", "4", "--max-new-tokens", "2", "--quiet"]
    /// psft keeps an old-policy snapshot refreshed every 3 steps; checkpoints every 4 steps land
    /// between refreshes, so resuming exactly needs the snapshot from the checkpoint.
    let psft = ["--objective", "psft", "--objective-arg", "refresh=3"]

    /// Uninterrupted runs, by configuration, computed once per test process.
    nonisolated(unsafe) static var references: [String: [Double]] = [:]

    func reference(_ extra: [String], ranks: Int) -> [Double] {
        let key = "\(ranks) " + extra.joined(separator: " ")
        if let r = Self.references[key] { return r }
        let out = CLI.tempDir("reference-\(Self.references.count)")
        let r = ranks == 1 ? CLI.sftDist(base + extra + ["--out", out]) : CLI.mpirun(ranks, base + extra + ["--out", out])
        XCTAssertEqual(r.status, 0, "reference run failed:\n\(r.all)")
        let losses = CLI.losses(out)
        XCTAssertEqual(losses.count, Self.steps)
        Self.references[key] = losses
        return losses
    }

    func assertResumedRun(_ out: String, matches expected: [Double], _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(CLI.loggedSteps(out), Array(1...Self.steps), "\(label): metrics.jsonl must hold each step once, in order", file: file, line: line)
        let got = CLI.losses(out)
        XCTAssertEqual(got.count, expected.count, label, file: file, line: line)
        for (i, (a, b)) in zip(got, expected).enumerated() where a.bitPattern != b.bitPattern {
            XCTFail("\(label): step \(i + 1) loss \(a) after resume, \(b) uninterrupted", file: file, line: line)
            return
        }
    }

    /// What a run left behind before it was resumed: its metrics.jsonl text and its newest
    /// published checkpoint (directory and step).
    struct Interrupted {
        var metrics: String
        var checkpoint: String
        var step: Int
        init(_ out: String, file: StaticString = #filePath, line: UInt = #line) {
            metrics = (try? String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8)) ?? ""
            let name = CLI.checkpoints(out).published.last ?? "step-?"
            checkpoint = out + "/checkpoints/" + name
            step = Int(name.dropFirst(5)) ?? -1
            XCTAssertGreaterThan(step, 0, "no checkpoint in \(out)", file: file, line: line)
        }
        /// The rows the checkpoint's run had written up to its step (no torn last line).
        var rowsUpToCheckpoint: [Substring] {
            metrics.split(separator: "\n").filter { line in
                guard let row = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let s = (row["step"] as? NSNumber)?.intValue else { return false }
                return s <= step
            }
        }
    }

    /// Proof that the run continued from the checkpoint instead of starting over (which gives
    /// the same losses, training being deterministic): the log names the checkpoint, the rows
    /// written before it survive byte for byte (they carry `elapsed_s`), and the first step
    /// trained after them is the checkpoint's step + 1.
    func assertContinued(_ out: String, from before: Interrupted, log: String, _ label: String,
                         file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(log.contains("resume: continuing after step \(before.step) of \(Self.steps) from \(before.checkpoint)"),
                      "\(label): the log does not name \(before.checkpoint):\n\(log)", file: file, line: line)
        let kept = before.rowsUpToCheckpoint
        XCTAssertFalse(kept.isEmpty, "\(label): no rows before the checkpoint", file: file, line: line)
        let now = ((try? String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8)) ?? "").split(separator: "\n")
        XCTAssertEqual(Array(now.prefix(kept.count)), kept, "\(label): rows up to step \(before.step) must survive byte for byte",
                       file: file, line: line)
        let firstNew = now.dropFirst(kept.count).first { $0.contains("\"loss\":") }
        let step = firstNew.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            .flatMap { ($0["step"] as? NSNumber)?.intValue }
        XCTAssertEqual(step, before.step + 1, "\(label): first step trained after resuming", file: file, line: line)
        // elapsed_s goes on from the checkpoint's (it restarted at 0 in the resumed rows).
        let elapsed = { (row: Substring?) in row.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            .flatMap { ($0["elapsed_s"] as? NSNumber)?.doubleValue } }
        if let last = elapsed(kept.last { $0.contains("\"loss\":") }), let next = elapsed(firstNew) {
            XCTAssertGreaterThan(next, last, "\(label): elapsed_s after resuming", file: file, line: line)
        } else {
            XCTFail("\(label): no elapsed_s around the resume point", file: file, line: line)
        }
    }

    /// The resume run prints its log (the rest of the command stays the same).
    func loud(_ args: [String]) -> [String] { args.filter { $0 != "--quiet" } }

    /// The whole job (mpirun and both ranks) gets SIGKILL at an arbitrary moment mid-run.
    func testKillNineMidRunThenResumeGivesIdenticalLosses() throws {
        let expected = reference([], ranks: 2)
        let out = CLI.tempDir("kill-mid-run")
        let args = base + ["--out", out, "--save-every", "4", "--keep-last", "2"]
        let job = try BackgroundJob.mpirun(2, args, seconds: 120)
        XCTAssertTrue(job.waitUntil(seconds: 100) { CLI.stepsLogged(out) >= 11 }, "the job never got to step 11")
        job.killAll(marker: out)
        let (killed, _) = job.wait()
        XCTAssertNotEqual(killed.status, 0, "the job finished before it could be killed")
        let before = CLI.checkpoints(out).published
        XCTAssertFalse(before.isEmpty, "no checkpoint was written before the kill")
        // A save publishes the new checkpoint before it deletes the oldest (so one whole
        // checkpoint always exists): a kill between the two leaves keep_last + 1, and the next
        // save prunes back to keep_last (checked after the resumed run below).
        XCTAssertLessThanOrEqual(before.count, 3, "keep_last 2, plus one if the kill fell between publishing and pruning: \(before)")

        let interrupted = Interrupted(out)
        let resumed = CLI.mpirun(2, loud(args) + ["--resume", "latest"])
        XCTAssertEqual(resumed.status, 0, resumed.all)
        assertResumedRun(out, matches: expected, "kill -9 mid-run, 2 ranks")
        assertContinued(out, from: interrupted, log: resumed.stdout, "kill -9 mid-run, 2 ranks")
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/model/model.safetensors"))
        let after = CLI.checkpoints(out).published
        XCTAssertEqual(after, ["step-000020", "step-000024"], "keep_last 2 after the resumed run's saves")
    }

    /// SIGKILL at each point of a save: before the manifest, before the rename, after it.
    /// The checkpoint directory is never torn, and resuming from whatever is there gives the
    /// uninterrupted losses (psft: parameters, AdamW moments and the old-policy snapshot).
    func testKillDuringSaveLeavesOldOrNewCheckpointWhole() throws {
        let expected = reference(psft, ranks: 1)
        for (point, published) in [("save-files", ["step-000004"]), ("save-before-rename", ["step-000004"]),
                                   ("save-renamed", ["step-000004", "step-000008"])] {
            let out = CLI.tempDir("kill-\(point)")
            let args = base + psft + ["--out", out, "--save-every", "4"]
            let job = try BackgroundJob.sftDist(args, environment: ["SFT_DIST_FAULT": "\(point):8"])
            let (killed, _) = job.wait()
            // `timeout` re-raises its child's fatal signal on itself.
            XCTAssertEqual(job.process.terminationReason, .uncaughtSignal, "\(point): expected death by SIGKILL\n\(killed.all)")
            XCTAssertEqual(killed.status, SIGKILL, "\(point): expected death by SIGKILL\n\(killed.all)")
            let (names, temporaries) = CLI.checkpoints(out)
            XCTAssertEqual(names, published, point)
            XCTAssertEqual(temporaries.isEmpty, point == "save-renamed", "\(point): leftovers \(temporaries)")
            XCTAssertEqual(CLI.stepsLogged(out), 8, point)

            let interrupted = Interrupted(out)
            let resumed = CLI.sftDist(loud(args) + ["--resume", "latest"])
            XCTAssertEqual(resumed.status, 0, "\(point):\n\(resumed.all)")
            assertResumedRun(out, matches: expected, "killed at \(point)")
            assertContinued(out, from: interrupted, log: resumed.stdout, "killed at \(point)")
            XCTAssertTrue(CLI.checkpoints(out).temporary.isEmpty, "\(point): the next save removes leftovers")
        }
    }

    /// A checkpoint written by one rank continues under two: the same losses up to float
    /// summation order (the tolerance MultiRankTests uses for -n 1 vs -n 2).
    func testResumeAtAnotherRankCountMatchesUpToSummationOrder() throws {
        let expected = reference([], ranks: 1)
        let first = CLI.tempDir("ranks-first"), second = CLI.tempDir("ranks-second")
        let r1 = CLI.sftDist(base + ["--out", first, "--save-every", "12"])
        XCTAssertEqual(r1.status, 0, r1.all)
        XCTAssertEqual(CLI.losses(first), expected, "saving checkpoints must not change the losses")
        let r2 = CLI.mpirun(2, loud(base) + ["--out", second, "--resume", first + "/checkpoints/step-000012"])
        XCTAssertEqual(r2.status, 0, r2.all)
        XCTAssertTrue(r2.stdout.contains("resume: continuing after step 12 of \(Self.steps) from \(first)/checkpoints/step-000012"), r2.stdout)
        // Steps 1-12 are the checkpoint's run's rows, carried over from its metrics.jsonl.
        let got = Array(CLI.losses(second).suffix(from: 12))
        XCTAssertEqual(CLI.loggedSteps(second), Array(1...Self.steps))
        XCTAssertEqual(Array(CLI.losses(second).prefix(12)), Array(expected.prefix(12)))
        XCTAssertEqual(got.count, Self.steps - 12)
        for (a, b) in zip(got, expected.suffix(from: 12)) {
            XCTAssertLessThanOrEqual(abs(a - b), 1e-5 * abs(b), "loss \(a) resumed on 2 ranks vs \(b)")
        }
        // The resumed run's recipe.yaml runs again as it is: the checkpoint it continued is a
        // comment (`resume: DIR` there was refused once keep_last had deleted DIR), so the
        // file trains the same settings from step 0.
        let yaml = try String(contentsOfFile: second + "/recipe.yaml", encoding: .utf8)
        XCTAssertTrue(yaml.contains("\n# resume: \(first)/checkpoints/step-000012\n"), yaml)
        try FileManager.default.removeItem(atPath: first + "/checkpoints/step-000012")
        let again = CLI.sftDist(["train", "--config", second + "/recipe.yaml", "--out", second + "-again"])
        XCTAssertEqual(again.status, 0, again.all)
        XCTAssertEqual(CLI.losses(second + "-again"), expected, "the recipe.yaml of a resumed run trains from step 0")
    }

    /// A smaller micro-batch on resume (the usual way out of memory): the losses agree with the
    /// uninterrupted run up to float summation order, as at another rank count, and the log says so.
    func testResumeWithAnotherMicroBatchSizeMatchesUpToSummationOrder() throws {
        let expected = reference([], ranks: 2)
        let out = CLI.tempDir("micro-batch")
        let r1 = CLI.mpirun(2, base + ["--out", out, "--save-every", "12", "--keep-last", "0"])
        XCTAssertEqual(r1.status, 0, r1.all)
        var smaller = loud(base)
        let at = try XCTUnwrap(smaller.firstIndex(of: "--micro-batch-size"))
        smaller[at + 1] = "1"
        let r2 = CLI.mpirun(2, smaller + ["--out", out, "--resume", out + "/checkpoints/step-000012"])
        XCTAssertEqual(r2.status, 0, r2.all)
        XCTAssertTrue(r2.stdout.contains("(saved by 2 ranks; micro_batch_size 2 there, 1 here: the losses agree up to float summation order)"), r2.stdout)
        let got = CLI.losses(out)
        XCTAssertEqual(CLI.loggedSteps(out), Array(1...Self.steps))
        XCTAssertEqual(Array(got.prefix(12)), Array(expected.prefix(12)))
        var differs = false
        for (a, b) in zip(got.suffix(from: 12), expected.suffix(from: 12)) {
            XCTAssertLessThanOrEqual(abs(a - b), 1e-5 * abs(b), "loss \(a) resumed with micro-batches of 1 vs \(b)")
            differs = differs || a != b
        }
        print("micro-batch resume: losses bit-identical after step 12: \(!differs)")
    }

    /// `--resume latest` with nothing to resume starts at step 0, so a job script can pass it
    /// on every submission.
    func testResumeLatestWithoutCheckpointStartsFresh() {
        let out = CLI.tempDir("resume-fresh")
        let args = base.map { $0 == "\(Self.steps)" ? "3" : $0 }   // --steps 3
        let r = CLI.sftDist(args + ["--out", out, "--resume", "latest"])
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertEqual(CLI.loggedSteps(out), [1, 2, 3])
    }

    /// A checkpoint of another run resumed into a used or a new --out: metrics.jsonl holds that
    /// run's rows up to the checkpoint, then the resumed steps (the used --out's own rows were
    /// kept and the resumed steps appended: two runs spliced into one series and plot).
    func testAnotherRunsCheckpointContinuesThatRunsMetrics() throws {
        let args = base.map { $0 == "\(Self.steps)" ? "6" : $0 }
        let source = CLI.tempDir("resume-source"), used = CLI.tempDir("resume-used"), fresh = CLI.tempDir("resume-new") + "/out"
        XCTAssertEqual(CLI.sftDist(args + ["--out", source, "--save-every", "3"]).status, 0)
        XCTAssertEqual(CLI.sftDist(args + ["--out", used, "--seed", "9"]).status, 0)
        let expected = CLI.losses(source)
        XCTAssertEqual(expected.count, 6)
        XCTAssertNotEqual(CLI.losses(used).first, expected.first, "the used --out must hold another run's losses")
        for out in [used, fresh] {
            let r = CLI.sftDist(args + ["--out", out, "--resume", source + "/checkpoints/step-000003"])
            XCTAssertEqual(r.status, 0, r.all)
            XCTAssertEqual(CLI.losses(out), expected, out)
        }
        // Through a symlink to the checkpoint: the same (it wiped the used --out's rows and kept none).
        let linked = CLI.tempDir("resume-linked"), link = CLI.tempDir("resume-link") + "/ck"
        XCTAssertEqual(CLI.sftDist(args + ["--out", linked, "--seed", "9"]).status, 0)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: source + "/checkpoints/step-000003")
        XCTAssertEqual(CLI.sftDist(args + ["--out", linked, "--resume", link]).status, 0)
        XCTAssertEqual(CLI.losses(linked), expected, "resumed through a symlink")
        // Forked: the checkpoint copied into another run's checkpoints/ and resumed there with
        // `latest`: that run's rows are not the checkpoint's (the recorded step-3 loss says so),
        // so the series starts after step 3 instead of splicing the two runs.
        let forked = CLI.tempDir("resume-forked")
        XCTAssertEqual(CLI.sftDist(args + ["--out", forked, "--seed", "9"]).status, 0)
        try FileManager.default.createDirectory(atPath: forked + "/checkpoints", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: source + "/checkpoints/step-000003", toPath: forked + "/checkpoints/step-000003")
        let f = CLI.sftDist(args.filter { $0 != "--quiet" } + ["--out", forked, "--resume", "latest"])
        XCTAssertEqual(f.status, 0, f.all)
        XCTAssertTrue(f.stdout.contains("resume: no metrics.jsonl holds the checkpoint's run up to step 3"), f.all)
        // The final line counts the whole run, as elapsed_s does, and says this process's share.
        XCTAssertTrue(f.stdout.contains(" since the resume; "), f.all)
        XCTAssertEqual(CLI.loggedSteps(forked), [4, 5, 6])
        XCTAssertEqual(CLI.losses(forked), Array(expected.suffix(3)))
    }

    /// A run resumed from an earlier checkpoint rewinds past the later ones of --out's
    /// checkpoints/: they are moved aside, as metrics.jsonl's rows past the step are dropped.
    /// Left, a kill of the resumed run before its next save and `--resume latest` took the old
    /// branch's newest — no step ran, the old weights were the final model and metrics.jsonl
    /// kept one row.
    func testAResumeFromAnEarlierCheckpointRemovesTheLaterOnes() throws {
        let expected = reference([], ranks: 2)
        let out = CLI.tempDir("resume-earlier")
        let args = base + ["--out", out, "--save-every", "4", "--keep-last", "0"]
        XCTAssertEqual(CLI.mpirun(2, args).status, 0)
        XCTAssertEqual(CLI.checkpoints(out).published, stride(from: 4, through: Self.steps, by: 4).map { String(format: "step-%06d", $0) })
        let job = try BackgroundJob.mpirun(2, loud(args) + ["--resume", out + "/checkpoints/step-000008"], seconds: 120,
                                           environment: ["SFT_DIST_FAULT": "after-step:10"])
        let (killed, _) = job.wait()
        XCTAssertNotEqual(killed.status, 0, "the fault did not stop the resumed run")
        let aside = out + "/checkpoints/abandoned-after-step-8"
        XCTAssertTrue(killed.stdout.contains("resume: moved step-000012, step-000016, step-000020, step-000024 to \(aside)/: checkpoints past step 8"), killed.all)
        XCTAssertEqual(CLI.checkpoints(out).published, ["step-000004", "step-000008"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: aside).sorted(), ["step-000012", "step-000016", "step-000020", "step-000024"])
        let resumed = CLI.mpirun(2, args + ["--resume", "latest"])
        XCTAssertEqual(resumed.status, 0, resumed.all)
        assertResumedRun(out, matches: expected, "resumed from step 8, killed at 10, resumed again")
    }

    /// A run without --resume into a directory that holds a previous run's checkpoints is
    /// refused before it touches anything: it saved its own beside them (keep_last pruning
    /// theirs, a later `--resume latest` picking whichever step was higher) and replaced the
    /// previous run's metrics.jsonl. With --resume latest it continues that run.
    func testAFreshRunIntoAPreviousRunsCheckpointsIsRefused() throws {
        let out = CLI.tempDir("resume-previous")
        let args = base.map { $0 == "\(Self.steps)" ? "3" : $0 } + ["--out", out, "--save-every", "2"]
        XCTAssertEqual(CLI.sftDist(args).status, 0)
        let metrics = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8)
        let r = CLI.sftDist(args + ["--seed", "7"])
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertTrue(r.stderr.contains("checkpoints/ holds a previous run's checkpoints (last: step-000002); continue that run with --resume latest"), r.all)
        XCTAssertEqual(try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8), metrics)
        let c = CLI.sftDist(args + ["--resume", "latest"])
        XCTAssertEqual(c.status, 0, c.all)
        XCTAssertEqual(CLI.loggedSteps(out), [1, 2, 3])
        // Resumed at its last step with metrics.jsonl gone, the run says it trained nothing
        // (it printed "loss nan → nan" and "0 tok/s").
        let finished = CLI.tempDir("resume-finished")
        let four = base.map { $0 == "\(Self.steps)" ? "4" : $0 } + ["--out", finished, "--save-every", "2"]
        XCTAssertEqual(CLI.sftDist(four).status, 0)
        try FileManager.default.removeItem(atPath: finished + "/metrics.jsonl")
        let again = CLI.sftDist(four.filter { $0 != "--quiet" } + ["--resume", "latest"])
        XCTAssertEqual(again.status, 0, again.all)
        XCTAssertTrue(again.stdout.contains("no training step ran (the run was already at step 4 of 4)"), again.all)
        XCTAssertFalse(again.all.contains("nan"), again.all)
        XCTAssertFalse(again.stdout.contains("tok/s"), again.all)
    }

    /// asft and iwsft without `--ref-model` compare against the initial weights (a copy made
    /// at start-up, never updated). Resumed from the step-3 checkpoint of a 2-rank run (into
    /// another directory), the reference must still be those initial weights, not the
    /// checkpoint's: steps 4-6 give the uninterrupted run's losses, KL to the reference
    /// (asft's `kl_ref`) and importance weights (iwsft's `mean_weight`, `clip_frac`) bit for bit.
    func testInitialWeightsReferenceOfASFTAndIWSFTSurvivesResume() throws {
        let args = ["train", "--model", "tiny", "--steps", "6", "--batch-size", "8", "--micro-batch-size", "2", "--lr", "1e-2",
                    "--warmup-steps", "1", "--eval-examples", "0", "--eval-every", "0", "--quiet", "--save-every", "3"]
        for (objective, keys) in [("asft", ["kl_ref", "mean_p"]), ("iwsft", ["mean_weight", "clip_frac", "mean_p"])] {
            let straight = CLI.tempDir("ref-\(objective)-straight"), resumed = CLI.tempDir("ref-\(objective)-resumed")
            let a = CLI.mpirun(2, args + ["--objective", objective, "--out", straight])
            XCTAssertEqual(a.status, 0, a.all)
            let b = CLI.mpirun(2, loud(args) + ["--objective", objective, "--out", resumed, "--resume", straight + "/checkpoints/step-000003"])
            XCTAssertEqual(b.status, 0, b.all)
            XCTAssertTrue(b.stdout.contains("resume: continuing after step 3 of 6"), b.all)
            // Steps 1-3 are the checkpoint's run's rows (its metrics.jsonl), 4-6 the resumed run's.
            let expected = Array(CLI.trainingRows(straight).suffix(3)), got = Array(CLI.trainingRows(resumed).suffix(3))
            XCTAssertEqual(CLI.loggedSteps(resumed), [1, 2, 3, 4, 5, 6], objective)
            // The reference term has moved away from its step-1 value, so a reference rebuilt
            // from the checkpoint's weights (KL 0, weights 1) would show.
            if objective == "asft" { XCTAssertGreaterThan(expected.first?["kl_ref"] ?? 0, 1e-6, "\(expected)") }
            if objective == "iwsft" { XCTAssertNotEqual(expected.first?["mean_weight"] ?? 1, 1, accuracy: 1e-4, "\(expected)") }
            for (i, (x, y)) in zip(expected, got).enumerated() {
                for key in ["loss", "grad_norm"] + keys {
                    XCTAssertNotNil(x[key], "\(objective) step \(i + 4): no \(key) in the uninterrupted run")
                    XCTAssertEqual(y[key]?.bitPattern, x[key]?.bitPattern, "\(objective) step \(i + 4) \(key): \(y[key] ?? .nan) resumed, \(x[key] ?? .nan) uninterrupted")
                }
            }
        }
    }
}
