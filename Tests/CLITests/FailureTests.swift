import Foundation
import XCTest

/// Failing loudly: a rank killed or hung from outside ends the job within bounded time with a
/// message; each class of bad input gets its own one-line message and exit code, leaves no
/// half-written output, and never traps.
final class FailureTests: XCTestCase {
    let tiny = ["train", "--model", "tiny", "--steps", "6", "--batch-size", "4", "--micro-batch-size", "2",
                "--eval-examples", "2", "--max-new-tokens", "2", "--quiet"]
    /// Long enough that the job is still training when a rank is killed.
    let long = ["train", "--model", "tiny", "--steps", "100000", "--batch-size", "4", "--micro-batch-size", "2",
                "--eval-examples", "2", "--max-new-tokens", "2", "--quiet"]

    // MARK: a rank dies or hangs

    /// Starts `long` under mpirun, waits until it trains, sends `signal` to rank 1 and waits for
    /// the job: its result, the seconds from the signal to the end, its output folder, rank 1's pid.
    func signalRankOne(_ signal: Int32, ranks: Int, watchdog: Int, name: String) throws
        -> (result: CLI.Result, took: TimeInterval, out: String, victim: Int32) {
        let out = CLI.tempDir(name)
        let job = try BackgroundJob.mpirun(ranks, long + ["--out", out, "--watchdog", "\(watchdog)"], seconds: 120)
        XCTAssertTrue(job.waitUntil(seconds: 60) { CLI.stepsLogged(out) >= 2 }, "the job never started training")
        let victim = try XCTUnwrap(BackgroundJob.ranks(marker: out).first { $0.rank == 1 }, "rank 1 not found")
        let signalledAt = Date()
        kill(victim.pid, signal)
        let (r, _) = job.wait()
        return (r, Date().timeIntervalSince(signalledAt), out, victim.pid)
    }

    /// `kill -9` of one rank: Open MPI's launcher notices the dead process and ends the job;
    /// the survivors must not hang in their next collective.
    func testKillNineOfOneRankEndsTheJobWithAMessage() throws {
        let (r, took, out, _) = try signalRankOne(SIGKILL, ranks: 3, watchdog: 20, name: "kill-rank")
        XCTAssertNotEqual(r.status, 0)
        XCTAssertNotEqual(r.status, 124, "timed out: the job hung after a rank died\n\(r.all)")
        XCTAssertLessThan(took, 30, "the job took \(took) s to end after rank 1 died")
        // Whoever notices first says so: the launcher, or our watchdog on a surviving rank.
        XCTAssertTrue(r.all.contains("rank 1") && r.all.contains("signal 9") || r.all.contains("no progress in collective"), r.all)
        // mpirun can return while the survivors it has just signalled are still exiting: give
        // them 5 s (the property is that none is left behind, not that all are gone first).
        let deadline = Date().addingTimeInterval(5)
        while !BackgroundJob.ranks(marker: out).isEmpty && Date() < deadline { usleep(50_000) }
        XCTAssertTrue(BackgroundJob.ranks(marker: out).isEmpty, "ranks left running 5 s after the job ended")
    }

    /// A rank that hangs (SIGSTOP: alive, so the launcher sees nothing wrong) leaves the others
    /// waiting in a collective: the watchdog ends the job after --watchdog seconds, with one
    /// message naming the rank and the collective, and exit code 4.
    func testHungRankTripsTheWatchdog() throws {
        let (r, took, _, victim) = try signalRankOne(SIGSTOP, ranks: 2, watchdog: 3, name: "hung-rank")
        kill(victim, SIGKILL)  // in case it survived (it must not)
        XCTAssertEqual(r.status, 4, r.all)
        XCTAssertGreaterThanOrEqual(took, 3, "the watchdog fired before its timeout")
        XCTAssertLessThan(took, 20, "the watchdog took \(took) s")
        XCTAssertEqual(CLI.occurrences(of: "no progress in collective", in: r.all), 1, r.all)
        XCTAssertTrue(r.all.contains("sft-dist: error (rank 0): no progress in collective"), r.all)
        XCTAssertTrue(r.all.contains("for 3 s (a rank may have died or hung); aborting"), r.all)
    }

    // MARK: bad input, one class at a time

    /// Runs `args`, expects `code` and a message containing `message`, printed once, and no
    /// model or metrics written under `out`.
    @discardableResult
    func assertFails(_ args: [String], out: String, code: Int32 = 1, _ message: String,
                     file: StaticString = #filePath, line: UInt = #line) -> CLI.Result {
        let r = CLI.sftDist(args + ["--out", out], seconds: 60)
        XCTAssertEqual(r.status, code, r.all, file: file, line: line)
        XCTAssertEqual(CLI.occurrences(of: message, in: r.stderr), 1, "expected \"\(message)\" once in:\n\(r.all)", file: file, line: line)
        XCTAssertTrue(r.stderr.hasPrefix("sft-dist: error: "), r.stderr, file: file, line: line)
        XCTAssertFalse(r.all.contains("Fatal error") || r.all.contains("Illegal instruction"), "trapped:\n\(r.all)", file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/model"), "half-written model", file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/metrics.jsonl"), "metrics written", file: file, line: line)
        return r
    }

    /// Under an address-space limit (`ulimit -v`, as SGE's h_vmem sets) a run ends with one
    /// line and exit 5 wherever the limit is reached. Before, OpenBLAS retried its work-buffer
    /// mapping for ever at 100 % CPU (a hang with no message) and AdamW's moments, Swift arrays,
    /// trapped (`Fatal error: failed to allocate`). The limits step through the start-up so
    /// that each is reached at another allocation (on the machine it was written on, 800,000 KiB
    /// reached the stall guard); which one depends on the machine's libraries, what must not is
    /// the outcome.
    func testAnAddressSpaceLimitEndsWithOneLineNeverAHang() throws {
        let dir = CLI.tempDir("ulimit")
        var ended = 0
        for (i, kib) in [600_000, 650_000, 700_000, 760_000, 800_000, 850_000].enumerated() {
            let argv = [CLI.binary, "train", "--model", "gpt2-mini", "--steps", "2", "--threads", "2", "--watchdog", "5",
                        "--quiet", "--out", dir + "/out\(i)"]
            let started = Date()
            let r = CLI.run(["bash", "-c", "ulimit -v \(kib); exec \"$@\"", "bash"] + argv, seconds: 60)
            let label = "ulimit -v \(kib): \(r.all)"
            XCTAssertLessThan(Date().timeIntervalSince(started), 40, label)
            XCTAssertFalse(r.all.contains("Fatal error") || r.all.contains("Program crashed"), label)
            guard r.status != 0 else { continue }   // a machine whose start-up maps less may fit
            ended += 1
            XCTAssertEqual(r.status, 5, label)
            XCTAssertEqual(CLI.occurrences(of: "sft-dist: error:", in: r.stderr), 1, label)
            XCTAssertTrue(r.stderr.contains("out of memory") || r.stderr.contains("no progress inside a matrix product"), label)
        }
        // gpt2-mini's AdamW state alone is 222 MB beside 256 MiB of OpenBLAS buffers: most limits end it.
        XCTAssertGreaterThanOrEqual(ended, 3, "the limits no longer reach the run's allocations")
    }

    func testBadDataClasses() throws {
        let dir = CLI.tempDir("bad-data")
        let good = #"{"prompt": "add 1 2 =", "completion": " 3"}"# + "\n"
        func data(_ name: String, _ bytes: [UInt8]) throws -> String {
            try Data(bytes).write(to: URL(fileURLWithPath: dir + "/" + name)); return dir + "/" + name
        }
        let cases: [(String, [UInt8], String)] = [
            ("json", Array((good + "{\"prompt\": \"a\",\n").utf8), "json.jsonl:2: invalid JSON"),
            ("utf8", Array(good.utf8) + Array(#"{"prompt": "a"#.utf8) + [0xC3, 0x28] + Array(#"", "completion": "b"}"#.utf8), "utf8.jsonl:2: invalid UTF-8"),
            ("long", Array(good.utf8) + Array(#"{"prompt": ""#.utf8) + [UInt8](repeating: 0x61, count: 1 << 20) + Array(#"", "completion": "b"}"#.utf8), "long.jsonl:2: line longer than 1048576 bytes"),
            ("empty", Array((good + #"{"prompt": "a", "completion": ""}"#).utf8), "empty.jsonl:2: empty completion"),
            ("missing", Array((good + good + #"{"prompt": "a"}"#).utf8), #"missing.jsonl:3: missing field "completion""#),
            ("type", Array((#"{"messages": [{"role": "user", "content": 5}]}"#).utf8), #"type.jsonl:1: messages[0]: field "content" must be a string"#),
            ("blank", Array("\n  \n".utf8), "blank.jsonl: no examples (no rows: the file is empty or blank)"),
        ]
        for (name, bytes, message) in cases {
            let path = try data(name + ".jsonl", bytes)
            assertFails(tiny + ["--data", path], out: dir + "/out-" + name, message)
        }
        assertFails(tiny + ["--data", dir + "/absent.jsonl"], out: dir + "/out-absent", "absent.jsonl: no such file")
        try FileManager.default.createDirectory(atPath: dir + "/folder.jsonl", withIntermediateDirectories: true)
        assertFails(tiny + ["--data", dir + "/folder.jsonl"], out: dir + "/out-folder", "folder.jsonl: not a regular file (a directory)")
        let heldout = try data("held.jsonl", Array((good + "nope\n").utf8))
        assertFails(tiny + ["--data", try data("ok.jsonl", Array(good.utf8)), "--heldout", heldout], out: dir + "/out-held", "held.jsonl:2: invalid JSON")
    }

    func testBadRecipeClasses() throws {
        let dir = CLI.tempDir("bad-recipe")
        assertFails(["train", "--config", dir + "/none.yaml"], out: dir + "/o1", "none.yaml: no such recipe file")
        try "steps: [1, 2\n".write(toFile: dir + "/broken.yaml", atomically: true, encoding: .utf8)
        assertFails(["train", "--config", dir + "/broken.yaml"], out: dir + "/o2", "broken.yaml:2:1: invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence at line 1, column 8)")
        // A missing input the recipe names: the message names the recipe's line (it named the file only).
        try "model: tiny\ndata: \(dir)/nope.jsonl\n".write(toFile: dir + "/nodata.yaml", atomically: true, encoding: .utf8)
        assertFails(["train", "--config", dir + "/nodata.yaml"], out: dir + "/o4", "nodata.yaml:2: data \(dir)/nope.jsonl: no such file")
        try "model: \(dir)/nomodel\nsteps: 1\n".write(toFile: dir + "/nomodel.yaml", atomically: true, encoding: .utf8)
        assertFails(["train", "--config", dir + "/nomodel.yaml"], out: dir + "/o5", "nomodel.yaml:1: model \(dir)/nomodel: no such model directory")
        try "model: tiny\nsave_evry: 5\n".write(toFile: dir + "/typo.yaml", atomically: true, encoding: .utf8)
        assertFails(["train", "--config", dir + "/typo.yaml"], out: dir + "/o3", #"typo.yaml:2: unknown key "save_evry" (did you mean "save_every"?)"#)
        try "steps: many\n".write(toFile: dir + "/type.yaml", atomically: true, encoding: .utf8)
        assertFails(["train", "--config", dir + "/type.yaml"], out: dir + "/o4", "type.yaml:1: steps must be an integer in 1…100000000 (got many)")
        assertFails(tiny + ["--save-every=-1"], out: dir + "/o5", "--save-every must be an integer in 0…100000000 (got -1)")
        assertFails(tiny + ["--watchdog=-2"], out: dir + "/o6", "--watchdog must be a number in [0, 1e+07] (got -2)")
        assertFails(tiny + ["--keep-last=-1"], out: dir + "/o7", "--keep-last must be an integer in 0…1000000 (got -1)")
        assertFails(tiny + ["--objective", "psft", "--objective-arg", "refresh=0"], out: dir + "/o8", "objective psft: refresh must be an integer in 1…100000000 (got 0)")
    }

    func testBadModelClasses() throws {
        let dir = CLI.tempDir("bad-model")
        let trained = dir + "/trained"
        XCTAssertEqual(CLI.sftDist(tiny + ["--steps", "1", "--out", trained]).status, 0)
        let model = trained + "/model/model.safetensors"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: model))
        try bytes.prefix(bytes.count - 100).write(to: URL(fileURLWithPath: model))
        assertFails(tiny + ["--model", trained + "/model"], out: dir + "/o1", "model.safetensors")
        assertFails(tiny + ["--model", dir + "/nowhere"], out: dir + "/o2", "nowhere: no such model directory")
        // A config whose parameters cannot fit in memory: refused with its size before anything
        // is allocated, as out of memory.
        try FileManager.default.createDirectory(atPath: dir + "/huge", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: trained + "/model/sft_dist_tokenizer.json", toPath: dir + "/huge/sft_dist_tokenizer.json")
        try #"{"model_type": "gpt2", "vocab_size": 260, "n_positions": 64, "n_embd": 65536, "n_layer": 64, "n_head": 1}"#
            .write(toFile: dir + "/huge/config.json", atomically: true, encoding: .utf8)
        let r = assertFails(tiny + ["--model", dir + "/huge"], out: dir + "/o3", code: 5, "huge/config.json: the model has")
        XCTAssertTrue(r.stderr.contains("TiB (values and gradients), but only"), r.stderr)
        let eval = CLI.sftDist(["eval", "--model", dir + "/huge", "--data", dir + "/none.jsonl"])
        XCTAssertEqual(eval.status, 5, eval.all)
        XCTAssertTrue(eval.stderr.contains("TiB (values), but only"), eval.stderr)
    }

    /// An MPI call that fails (here a broadcast from a rank that does not exist, on the last
    /// rank after step 2: SFT_DIST_FAULT=mpi-error:2) ends the whole job with one line naming
    /// the call and the rank, and exit code 3.
    func testFailedMPICallExitsWithCodeThree() throws {
        let out = CLI.tempDir("mpi-error")
        let job = try BackgroundJob.mpirun(3, tiny + ["--out", out], seconds: 60, environment: ["SFT_DIST_FAULT": "mpi-error:2"])
        let (r, _) = job.wait()
        XCTAssertEqual(r.status, 3, r.all)
        XCTAssertEqual(CLI.occurrences(of: "sft-dist: MPI broadcast failed with code", in: r.stderr), 1, r.all)
        XCTAssertTrue(r.stderr.contains("on rank 2"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/model"), "a model was written after the failure")
    }

    /// A fault every rank meets at the same moment (the same allocation under the same memory
    /// limit; here SFT_DIST_FAULT=fail-all:2 on every rank) is printed once, by rank 0: each
    /// rank printed its own copy before the first abort landed. Five runs, at 2 and 4 ranks.
    func testAFaultEveryRankMeetsAtOnceIsPrintedOnce() throws {
        for (i, ranks) in [2, 4, 2, 4, 2].enumerated() {
            let out = CLI.tempDir("fail-all-\(i)")
            let job = try BackgroundJob.mpirun(ranks, tiny + ["--out", out], seconds: 60, environment: ["SFT_DIST_FAULT": "fail-all:2"])
            let (r, _) = job.wait()
            XCTAssertEqual(r.status, 5, r.all)
            XCTAssertEqual(CLI.occurrences(of: "sft-dist: error", in: r.stderr), 1, "-n \(ranks): \(r.all)")
            XCTAssertTrue(r.stderr.contains("sft-dist: error (rank 0): injected fault after step 2, on every rank"), r.all)
        }
    }

    /// Output that cannot be written (README exit code 6) ends the whole job once, under
    /// mpirun: a checkpoint directory blocked by a file, and a metrics file that is a directory.
    func testUnwritableOutputExitsWithCodeSix() throws {
        let dir = CLI.tempDir("unwritable")
        try FileManager.default.createDirectory(atPath: dir + "/ckpt", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: dir + "/ckpt/checkpoints", contents: Data())
        try FileManager.default.createDirectory(atPath: dir + "/metrics/metrics.jsonl", withIntermediateDirectories: true)
        for (out, extra, message) in [(dir + "/ckpt", ["--save-every", "2"], "ckpt/checkpoints: exists and is not a directory, where this run saves its checkpoints"),
                                      (dir + "/metrics", [], "metrics/metrics.jsonl: is a directory, where this run appends its metrics")] {
            let r = CLI.mpirun(2, tiny + extra + ["--out", out], seconds: 60)
            XCTAssertEqual(r.status, 6, r.all)
            XCTAssertEqual(CLI.occurrences(of: message, in: r.stderr), 1, r.all)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/model"), "a model was written after the failure")
        }
    }

    /// A non-finite loss aborts by default (exit 2, naming the step). nan_policy: skip skips
    /// and counts such steps (`CheckpointUnitTests`), but not weights an update already made
    /// non-finite: there every later step was skipped and the broken model saved with exit 0.
    func testNonFiniteLossPolicy() {
        let dir = CLI.tempDir("nan")
        // No generation in the evaluations: greedy decoding of a model whose weights are no
        // longer finite is the evaluator's business, not what this test is about.
        var quietEval = tiny   // no evaluation answers, so no --max-new-tokens (refused where nothing generates)
        if let i = quietEval.firstIndex(of: "--max-new-tokens") { quietEval.removeSubrange(i...(i + 1)) }
        let blowUp = quietEval + ["--lr", "1e30", "--warmup-steps", "0", "--grad-clip", "0", "--schedule", "constant", "--eval-examples", "0"]
        let r = CLI.sftDist(blowUp + ["--out", dir + "/abort"])
        XCTAssertEqual(r.status, 2, r.all)
        XCTAssertTrue(r.stderr.contains("sft-dist: error: non-finite") && r.stderr.contains("at step 2"), r.stderr)
        XCTAssertTrue(r.stderr.contains("lower the learning rate"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/abort/model"))
        // The plot of the steps before the failure is there: the run a user most wants to see.
        let plot = try? String(contentsOfFile: dir + "/abort/loss.svg", encoding: .utf8)
        XCTAssertTrue(plot?.contains(">train loss</text>") ?? false, plot ?? "no loss.svg after the abort")
        let s = CLI.sftDist(blowUp.filter { $0 != "--quiet" } + ["--nan-policy", "skip", "--out", dir + "/skip"])
        XCTAssertEqual(s.status, 2, s.all)
        XCTAssertEqual(CLI.occurrences(of: "error: non-finite or overflowing weights at step 2", in: s.stderr), 1, s.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/skip/model"))
    }

    /// An evaluation of weights gone non-finite logs the figures of their probabilities as null:
    /// eval_ece logged 1.0, the worst calibration, beside a null eval_loss.
    func testANonFiniteEvaluationLogsNoCalibration() throws {
        let dir = CLI.tempDir("nan-ece")
        _ = CLI.sftDist(["train", "--model", "tiny", "--steps", "30", "--lr", "1e5", "--warmup-steps", "0", "--grad-clip", "0",
                         "--batch-size", "8", "--nan-policy", "skip", "--quiet", "--out", dir])
        let rows = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        let broken = rows.filter { $0["eval_loss"] is NSNull }
        XCTAssertFalse(broken.isEmpty, "no evaluation of non-finite weights: \(rows)")
        for row in broken {
            XCTAssertTrue(row["eval_ece"] is NSNull, "\(row)")
            XCTAssertNotNil(row["eval_generated"] as? NSNumber, "\(row)")
        }
        let finite = rows.filter { $0["eval_loss"] is NSNumber }
        XCTAssertFalse(finite.isEmpty)
        for row in finite { XCTAssertNotNil(row["eval_ece"] as? NSNumber, "\(row)") }
    }

    /// A non-finite value at the first step comes before any update, so the message names the
    /// objective and its arguments, not the learning rate (dpo's beta=1e30 overflows the
    /// gradient; the message said "lower the learning rate").
    func testNonFiniteFirstStepNamesTheObjectiveNotTheLearningRate() throws {
        let dir = CLI.tempDir("nan-first")
        let data = dir + "/pairs.jsonl"
        try String(repeating: "{\"prompt\": \"1 + 1 =\", \"chosen\": \" 2\", \"rejected\": \" 3\"}\n", count: 8)
            .write(toFile: data, atomically: true, encoding: .utf8)
        let r = CLI.sftDist(["train", "--model", "tiny", "--data", data, "--objective", "dpo", "--objective-arg", "beta=1e30",
                             "--steps", "2", "--batch-size", "4", "--eval-examples", "0", "--quiet", "--out", dir + "/out"])
        XCTAssertEqual(r.status, 2, r.all)
        XCTAssertEqual(CLI.occurrences(of: "at step 1; no update has been applied yet", in: r.stderr), 1, r.all)
        XCTAssertTrue(r.stderr.contains("(objective dpo: beta=1e30)"), r.all)
        XCTAssertFalse(r.stderr.contains("learning rate"), r.all)
    }

    /// Finite weights can still give non-finite values on every batch: lr 1e6 takes tiny's to
    /// ~1e14 (below the √Float.max bound above) and 27 of 30 steps were skipped, the model
    /// saved with exit 0. `nan_skip_limit` skipped steps in a row end the run (exit 2); with
    /// the limit off the run ends, and score, eval and select refuse the model it saved
    /// (score wrote `-nan` into its JSON, eval printed `loss -nan`, select kept rows by null).
    func testWeightsThatGiveNonFiniteValuesOnEveryBatch() throws {
        let dir = CLI.tempDir("nan-limit")
        let data = dir + "/d.jsonl"
        XCTAssertEqual(CLI.sftDist(["make-data", "--out", data, "--count", "200"]).status, 0)
        let blowUp = ["train", "--model", "tiny", "--data", data, "--batch-size", "8", "--lr", "1e6", "--grad-clip", "0",
                      "--warmup-steps", "0", "--nan-policy", "skip", "--eval-examples", "0", "--quiet"]
        let r = CLI.mpirun(2, blowUp + ["--steps", "30", "--out", dir + "/limited"])
        XCTAssertEqual(r.status, 2, r.all)
        XCTAssertEqual(CLI.occurrences(of: "10 steps in a row had non-finite values", in: r.stderr), 1, r.all)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/limited/model"))
        let plot = try String(contentsOfFile: dir + "/limited/loss.svg", encoding: .utf8)
        XCTAssertTrue(plot.contains("skipped steps (non-finite, nan_policy: skip)"), plot)

        let off = CLI.mpirun(2, blowUp + ["--steps", "8", "--nan-skip-limit", "0", "--out", dir + "/off"])
        XCTAssertEqual(off.status, 0, off.all)
        let model = dir + "/off/model"
        let score = CLI.mpirun(2, ["score", "--model", model, "--data", data, "--out", dir + "/scores.jsonl"])
        XCTAssertEqual(score.status, 1, score.all)
        XCTAssertEqual(CLI.occurrences(of: "d.jsonl:1: the model's log-probability of completion token 1 is", in: score.stderr), 1, score.all)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/scores.jsonl"))
        let eval = CLI.mpirun(2, ["eval", "--model", model, "--data", data, "--examples", "0"])
        XCTAssertEqual(eval.status, 1, eval.all)
        XCTAssertEqual(CLI.occurrences(of: "the loss on \(data) is nan: its weights give non-finite values", in: eval.stderr), 1, eval.all)
        let select = CLI.mpirun(2, ["select", "--model", model, "--data", data, "--method", "loss", "--keep", "0.5", "--out", dir + "/kept.jsonl"])
        XCTAssertEqual(select.status, 1, select.all)
        XCTAssertEqual(CLI.occurrences(of: "the model gives a non-finite loss", in: select.stderr), 1, select.all)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/kept.jsonl"))
        // UDS's nuclear norm of NaN logits ended the process with a trap (LAPACK's dsyev failed).
        let uds = CLI.mpirun(2, ["select", "--model", model, "--data", data, "--method", "uds", "--keep", "0.5", "--out", dir + "/kept.jsonl"])
        XCTAssertEqual(uds.status, 1, uds.all)
        XCTAssertEqual(CLI.occurrences(of: "d.jsonl:1: the model gives a non-finite utility", in: uds.stderr), 1, uds.all)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/kept.jsonl"))
        // generate printed what an argmax over NaN picked, exit 0.
        let prompts = dir + "/prompts.jsonl"
        try "{\"prompt\": \"add 2 3 =\"}\n{\"prompt\": \"mul 2 3 =\"}\n".write(toFile: prompts, atomically: true, encoding: .utf8)
        let batch = CLI.mpirun(2, ["generate", "--model", model, "--prompts", prompts, "--json"])
        XCTAssertEqual(batch.status, 1, batch.all)
        XCTAssertEqual(CLI.occurrences(of: "prompts.jsonl:1: the model's logits for token 10 are not finite", in: batch.stderr), 1, batch.all)
        XCTAssertEqual(batch.stdout, "", batch.all)
        let one = CLI.sftDist(["generate", "--model", model, "--prompt", "add 2 3 ="])
        XCTAssertEqual(one.status, 1, one.all)
        XCTAssertEqual(CLI.occurrences(of: "--prompt: the model's logits for token 10 are not finite", in: one.stderr), 1, one.all)
        XCTAssertEqual(one.stdout, "", one.all)
        // The limit without the skip policy would do nothing: refused, as other keys nothing reads.
        let alone = CLI.sftDist(tiny + ["--nan-skip-limit", "3", "--out", CLI.tempDir("nan-limit-alone")])
        XCTAssertEqual(alone.status, 1, alone.all)
        XCTAssertTrue(alone.stderr.contains("bounds the steps nan_policy skip skips in a row"), alone.all)
    }

    /// What the final save would refuse is refused before the first step: a 2,000-step run
    /// into an OUT whose `model` was a file trained to the end, then lost its weights (exit 6).
    func testOutputsTheRunCannotWriteAreRefusedBeforeTraining() throws {
        for (name, extra) in [("model", [String]()), ("model-ema", ["--ema", "0.9"]), ("checkpoints", ["--save-every", "100"])] {
            let out = CLI.tempDir("unwritable-\(name)")
            try "x\n".write(toFile: out + "/" + name, atomically: true, encoding: .utf8)
            let r = CLI.sftDist(long + extra + ["--out", out])
            XCTAssertEqual(r.status, 6, r.all)
            XCTAssertEqual(CLI.occurrences(of: "\(out)/\(name): exists and is not a directory", in: r.stderr), 1, r.all)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/metrics.jsonl"), "\(name): training started")
        }
    }
}
