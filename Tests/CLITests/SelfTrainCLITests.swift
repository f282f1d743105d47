import Foundation
import XCTest

/// `--self-train` end to end: the rounds' samples, pseudo-labels and per-step losses are the
/// same under real `mpirun -n 1` and `-n 2`; a run resumed in the middle of a round continues
/// exactly (the round's rows come from the checkpoint, not from a new round); misuse fails at
/// start-up with one line.
final class SelfTrainCLITests: XCTestCase {
    /// 60 labelled built-in task rows and 80 unlabelled prompts.
    func writeData(_ dir: String) -> (labelled: String, unlabelled: String) {
        let lab = dir + "/lab.jsonl", unl = dir + "/unl.jsonl"
        XCTAssertEqual(CLI.sftDist(["make-data", "--out", lab, "--count", "60", "--seed", "3"]).status, 0)
        XCTAssertEqual(CLI.sftDist(["make-data", "--out", unl, "--count", "80", "--seed", "4", "--unlabelled"]).status, 0)
        return (lab, unl)
    }

    func semiEvolArgs(_ data: (labelled: String, unlabelled: String)) -> [String] {
        ["train", "--model", "tiny", "--data", data.labelled, "--unlabelled", data.unlabelled, "--self-train", "semievol",
         "--self-train-every", "3", "--self-train-scorer", "task", "--self-train-arg", "prompts=24",
         "--self-train-arg", "ratio=0.5", "--batch-size", "8", "--micro-batch-size", "3", "--steps", "7", "--lr", "1e-2",
         "--warmup-steps", "0", "--eval-examples", "0", "--eval-every", "0", "--quiet", "--checksum-every", "2"]
    }

    func roundFiles(_ out: String) -> [String: String] {
        let dir = out + "/self-train"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return Dictionary(uniqueKeysWithValues: names.map { ($0, (try? String(contentsOfFile: dir + "/" + $0, encoding: .utf8)) ?? "") })
    }

    func records(_ text: String) -> [[String: Any]] {
        text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    typealias Run = (rows: [[String: Double]], rounds: [String: String])

    /// `args` under real mpirun -n 1 and -n 2: the same round files (every record agrees on
    /// `recordKeys`) and metrics rows (`metricKeys` within 1e-5: after step 1 the weights differ
    /// in the last bits, gradients being summed in another order); the two runs.
    func assertRankCountInvariant(_ name: String, _ args: [String], recordKeys: [String], metricKeys: [String],
                                  file: StaticString = #filePath, line: UInt = #line) -> [Run] {
        var runs: [Run] = []
        for n in [1, 2] {
            let out = CLI.tempDir("\(name)-\(n)")
            let r = CLI.mpirun(n, args + ["--out", out], seconds: 240)
            XCTAssertEqual(r.status, 0, r.all, file: file, line: line)
            runs.append((CLI.trainingRows(out), roundFiles(out)))
        }
        XCTAssertEqual(runs[0].rows.count, 7, file: file, line: line)
        // Rounds at steps 1, 4, 7.
        XCTAssertEqual(Set(runs[0].rounds.keys), ["round-1.jsonl", "round-2.jsonl", "round-3.jsonl"], file: file, line: line)
        XCTAssertEqual(runs[0].rows.compactMap { $0["self_train_round"] }, [1, 2, 3], file: file, line: line)
        XCTAssertEqual(Set(runs[0].rounds.keys), Set(runs[1].rounds.keys), file: file, line: line)
        for (round, text) in runs[0].rounds {
            let a = records(text), b = records(runs[1].rounds[round] ?? "")
            XCTAssertEqual(a.count, b.count, round, file: file, line: line)
            // Every key is in some record of the -n 1 round (some only in some records:
            // semievol's answer, superhf's correct, s3ft's paraphrase), so the comparison below
            // is not "-" against "-" throughout.
            for key in recordKeys where !a.contains(where: { $0[key] != nil }) {
                XCTFail("\(round): no record has \(key) at -n 1", file: file, line: line)
            }
            for (i, (x, y)) in zip(a, b).enumerated() {
                for key in recordKeys {
                    XCTAssertEqual("\(x[key] ?? "-")", "\(y[key] ?? "-")", "\(round) record \(i + 1) \(key): -n 1 vs -n 2", file: file, line: line)
                }
            }
        }
        // Each metric at some step of the -n 1 run (some only at a round's step), so that the
        // nan-and-nan skip below does not pass a metric neither run logs.
        for key in ["loss", "grad_norm", "loss_tokens"] + metricKeys where !runs[0].rows.contains(where: { $0[key] != nil }) {
            XCTFail("no step logged \(key) at -n 1", file: file, line: line)
        }
        for (i, (a, b)) in zip(runs[0].rows, runs[1].rows).enumerated() {
            for key in ["loss", "grad_norm", "loss_tokens"] + metricKeys {
                let x = a[key] ?? .nan, y = b[key] ?? .nan
                if x.isNaN && y.isNaN { continue }
                XCTAssertEqual(x, y, accuracy: 1e-5 * max(abs(x), 1e-3), "step \(i + 1) \(key): -n 1 \(x) vs -n 2 \(y)", file: file, line: line)
            }
        }
        return runs
    }

    /// Checkpoint after step 5, in the middle of round 2 (steps 4-6): the resumed steps 6-7 (and
    /// round 3 at step 7) equal the straight run's bit for bit; round 2 is restored, not re-run.
    func assertResumesExactlyInTheMiddleOfARound(_ name: String, _ args: (String) -> [String],
                                                 file: StaticString = #filePath, line: UInt = #line) {
        let dir = CLI.tempDir(name + "-resume")
        let args = args(dir)
        XCTAssertEqual(CLI.sftDist(args + ["--out", dir + "/straight"]).status, 0, file: file, line: line)
        XCTAssertEqual(CLI.sftDist(args + ["--out", dir + "/saved", "--save-every", "5"]).status, 0, file: file, line: line)
        let r = CLI.sftDist(args + ["--out", dir + "/resumed", "--resume", dir + "/saved/checkpoints/step-000005"])
        XCTAssertEqual(r.status, 0, r.all, file: file, line: line)
        let straight = CLI.losses(dir + "/straight"), resumed = CLI.losses(dir + "/resumed")
        XCTAssertEqual(straight.count, 7, file: file, line: line)
        XCTAssertEqual(Array(resumed.suffix(2)), Array(straight.suffix(2)), "steps 6-7 after resuming at step 5", file: file, line: line)
        XCTAssertNotNil(roundFiles(dir + "/straight")["round-3.jsonl"], "the straight run wrote no round 3", file: file, line: line)
        XCTAssertEqual(roundFiles(dir + "/resumed")["round-3.jsonl"], roundFiles(dir + "/straight")["round-3.jsonl"], file: file, line: line)
        XCTAssertNil(roundFiles(dir + "/resumed")["round-2.jsonl"], "the resumed run re-ran round 2 instead of restoring it", file: file, line: line)
    }

    func testSemiEvolIsRankCountInvariantUnderMpirun() throws {
        let runs = assertRankCountInvariant("semievol", semiEvolArgs(writeData(CLI.tempDir("semievol-data"))),
                                            recordKeys: ["prompt", "answers", "finished", "votes", "consistent", "selected", "answer", "correct"],
                                            metricKeys: ["pseudo_labels", "pseudo_label_entropy_threshold"])
        // Pseudo-labels exist, so the mixed batches are exercised.
        XCTAssertGreaterThan(runs[0].rows[3]["self_train_rows"] ?? 0, 0, "round 2 selected no pseudo-labels")
        XCTAssertNotNil(runs[0].rows[3]["pseudo_label_precision"], "the task scorer checks the pseudo-labels")
        // Entropies agree up to float summation order.
        for (round, text) in runs[0].rounds {
            for (i, (x, y)) in zip(records(text), records(runs[1].rounds[round] ?? "")).enumerated() {
                let ex = (x["entropy"] as? NSNumber)?.doubleValue ?? 0, ey = (y["entropy"] as? NSNumber)?.doubleValue ?? 0
                XCTAssertEqual(ex, ey, accuracy: 1e-5, "\(round) record \(i + 1) entropy")
            }
        }
    }

    func testSemiEvolResumesExactlyInTheMiddleOfARound() throws {
        assertResumesExactlyInTheMiddleOfARound("semievol") { semiEvolArgs(writeData($0)) }
        // The same --unlabelled path with other content (rounds would differ) is refused.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sft-dist-tests-\(getpid())/semievol-resume").path
        let unl = dir + "/unl.jsonl"
        let rows = try String(contentsOfFile: unl, encoding: .utf8).split(separator: "\n")
        try (rows.prefix(rows.count - 10).joined(separator: "\n") + "\n").write(toFile: unl, atomically: true, encoding: .utf8)
        let r = CLI.sftDist(semiEvolArgs((dir + "/lab.jsonl", unl)) + ["--out", dir + "/changed", "--resume", dir + "/saved/checkpoints/step-000005"])
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertTrue(r.stderr.contains("--unlabelled \(unl) differs from the file the checkpoint's run read"), r.all)
    }

    /// top_p 1: nucleus sampling walks the tokens sorted by probability, and on the untrained tiny
    /// model many are nearly tied, so the last-bit weight differences between -n 1 and -n 2 after
    /// step 1 reorder them and change samples of rounds 2-3; sampling over the vocabulary in order
    /// moves a sample only when its draw falls within round-off of a boundary.
    func superHFArgs(_ data: (labelled: String, unlabelled: String)) -> [String] {
        ["train", "--model", "tiny", "--data", data.labelled, "--unlabelled", data.unlabelled, "--self-train", "superhf",
         "--objective", "superhf", "--reward", "task", "--self-train-scorer", "task", "--self-train-every", "3",
         "--self-train-arg", "prompts=12", "--self-train-arg", "k=4", "--self-train-arg", "top_p=1", "--batch-size", "8", "--micro-batch-size", "3", "--steps", "7",
         "--lr", "1e-2", "--warmup-steps", "0", "--eval-examples", "0", "--eval-every", "0", "--quiet", "--checksum-every", "2"]
    }

    /// `--self-train superhf`: the same completions, rewards and best-of-k picks in every round
    /// file, and the same losses and KL, at -n 1 and -n 2.
    func testSuperHFIsRankCountInvariantUnderMpirun() throws {
        let runs = assertRankCountInvariant("superhf", superHFArgs(writeData(CLI.tempDir("superhf-data"))),
                                            recordKeys: ["prompt", "answers", "finished", "rewards", "best", "kept", "correct"],
                                            metricKeys: ["kl_ref", "superhf_reward_mean", "superhf_best_reward", "pseudo_label_precision"])
        XCTAssertGreaterThan(runs[0].rows[0]["self_train_rows"] ?? 0, 0, "round 1 kept no completions")
        XCTAssertEqual(runs[0].rows[0]["kl_ref"] ?? .nan, 0, accuracy: 1e-9, "step 1 trains the initial model: KL 0")
        XCTAssertGreaterThan(runs[0].rows[6]["kl_ref"] ?? 0, 0, "the model never left the initial one")
        XCTAssertEqual(records(runs[0].rounds["round-1.jsonl"] ?? "").count, 12)
    }

    func testSuperHFResumesExactlyInTheMiddleOfARound() throws {
        assertResumesExactlyInTheMiddleOfARound("superhf") { superHFArgs(writeData($0)) }
    }

    /// Resumed at -n 2 into another --out (no round files or metrics there): every rank decides
    /// alike that --out's round files go (rank 0 alone did, and the run hung in its next
    /// collective until the watchdog), and steps 6-7 equal the straight -n 2 run's.
    func testSuperHFResumesIntoAnotherOutAtTwoRanks() throws {
        let dir = CLI.tempDir("superhf-resume-other")
        let args = superHFArgs(writeData(dir))
        let saved = CLI.mpirun(2, args + ["--out", dir + "/saved", "--save-every", "5"], seconds: 120)
        XCTAssertEqual(saved.status, 0, saved.all)
        let r = CLI.mpirun(2, args + ["--out", dir + "/resumed", "--resume", dir + "/saved/checkpoints/step-000005", "--watchdog", "60"], seconds: 120)
        XCTAssertEqual(r.status, 0, r.all)
        let straight = CLI.losses(dir + "/saved"), resumed = CLI.losses(dir + "/resumed")
        XCTAssertEqual(straight.count, 7)
        XCTAssertEqual(Array(resumed.suffix(2)), Array(straight.suffix(2)), "steps 6-7 after resuming at step 5")
        XCTAssertEqual(roundFiles(dir + "/resumed")["round-3.jsonl"], roundFiles(dir + "/saved")["round-3.jsonl"])
    }

    /// rft, ssr and s3ft generate for `--data`'s own labelled prompts and keep what the task
    /// scorer accepts against the gold answer; from GRPO's warm start (which answers some
    /// arithmetic) so that rounds accept answers and the mixed or replaced rows are trained
    /// (rft samples at temperature 0.5, where it accepts 1–2 % of 160 answers; at 1.0 none;
    /// top_p 1 as for superhf above).
    func labelledArgs(_ method: String, _ data: String) -> [String] {
        ["train", "--model", GRPOCLITests.warm, "--data", data, "--self-train", method, "--self-train-every", "3",
         "--self-train-scorer", "task", "--self-train-arg", "prompts=40", "--batch-size", "8", "--micro-batch-size", "3",
         "--steps", "7", "--lr", "1e-3", "--warmup-steps", "0", "--eval-examples", "0", "--eval-every", "0", "--quiet",
         "--checksum-every", "2"] + (method == "rft" ? ["--self-train-arg", "temperature=0.5", "--self-train-arg", "top_p=1"] : [])
    }

    static let labelledMethods: [(method: String, records: [String], metrics: [String], accepted: String)] = [
        ("rft", ["prompt", "reference", "answers", "accepted", "kept"], ["rft_accepted", "rft_rows", "self_train_rows"], "rft_accepted"),
        ("ssr", ["prompt", "gold", "generated", "replaced", "target"], ["self_targets_accepted", "self_train_replaced"], "self_targets_accepted"),
        ("s3ft", ["prompt", "gold", "generated", "paraphrase", "paraphrase_accepted", "replaced", "target"],
         ["self_targets_accepted", "self_targets_paraphrased", "self_train_replaced"], "self_targets_accepted"),
    ]

    func testRFTSSRAndS3FTAreRankCountInvariantUnderMpirun() throws {
        let data = writeData(CLI.tempDir("labelled-data")).labelled
        for m in Self.labelledMethods {
            let runs = assertRankCountInvariant(m.method, labelledArgs(m.method, data), recordKeys: m.records, metricKeys: m.metrics)
            XCTAssertGreaterThan(runs[0].rows.compactMap { $0[m.accepted] }.reduce(0, +), 0, "\(m.method): no round accepted an answer")
        }
    }

    func testRFTSSRAndS3FTResumeExactlyInTheMiddleOfARound() throws {
        for m in Self.labelledMethods {
            assertResumesExactlyInTheMiddleOfARound(m.method) { labelledArgs(m.method, writeData($0).labelled) }
        }
    }

    /// A fresh run into a used --out: an earlier self-training run's rounds beyond this run's
    /// stayed beside its own (round-3 and round-4 next to a new round-1 and round-2), and a run
    /// without self-training kept them silently; a resumed run keeps its rounds.
    func testAnEarlierRunsRoundFilesAreReplacedOrNamed() throws {
        let dir = CLI.tempDir("rounds-reused")
        let data = writeData(dir).labelled
        func run(_ every: Int?, _ extra: [String] = []) -> CLI.Result {
            CLI.sftDist(["train", "--model", "tiny", "--data", data, "--steps", "4", "--batch-size", "8", "--warmup-steps", "0",
                         "--eval-examples", "0", "--quiet", "--out", dir + "/out"]
                        + (every.map { ["--self-train", "rft", "--self-train-scorer", "task", "--self-train-arg", "prompts=4",
                                        "--self-train-every", "\($0)"] } ?? []) + extra)
        }
        XCTAssertEqual(run(1, ["--save-every", "2"]).status, 0)
        XCTAssertEqual(Set(roundFiles(dir + "/out").keys), ["round-1.jsonl", "round-2.jsonl", "round-3.jsonl", "round-4.jsonl"])
        let resumed = run(1, ["--save-every", "2", "--resume", dir + "/out/checkpoints/step-000002"])
        XCTAssertEqual(resumed.status, 0, resumed.all)
        XCTAssertEqual(roundFiles(dir + "/out").count, 4, "a resumed run keeps the rounds before its checkpoint")
        try FileManager.default.removeItem(atPath: dir + "/out/checkpoints")
        // Only round files are removed: a user's file and a directory of a round's name stay.
        try "mine\n".write(toFile: dir + "/out/self-train/round-mine.jsonl", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: dir + "/out/self-train/round-7.jsonl", withIntermediateDirectories: true)
        XCTAssertEqual(run(3).status, 0)
        XCTAssertEqual(Set(roundFiles(dir + "/out").keys), ["round-1.jsonl", "round-2.jsonl", "round-mine.jsonl", "round-7.jsonl"])
        try FileManager.default.removeItem(atPath: dir + "/out/self-train/round-mine.jsonl")
        try FileManager.default.removeItem(atPath: dir + "/out/self-train/round-7.jsonl")
        // Another run's checkpoint resumed into this --out: its round files (rounds 1-2 of the
        // run above) are not the checkpoint's run's; only the resumed run's rounds 3-4 remain.
        XCTAssertEqual(run(1, ["--save-every", "2", "--out", dir + "/s"]).status, 0)
        let foreign = run(1, ["--save-every", "2", "--resume", dir + "/s/checkpoints/step-000002"])
        XCTAssertEqual(foreign.status, 0, foreign.all)
        XCTAssertEqual(Set(roundFiles(dir + "/out").keys), ["round-3.jsonl", "round-4.jsonl"])
        XCTAssertEqual(roundFiles(dir + "/out")["round-3.jsonl"], roundFiles(dir + "/s")["round-3.jsonl"])
        try FileManager.default.removeItem(atPath: dir + "/out/checkpoints")
        let plain = run(nil)
        XCTAssertEqual(plain.status, 0, plain.all)
        XCTAssertTrue(plain.stderr.contains("sft-dist: warning: \(dir)/out/self-train is an earlier run's, which this run does not write"), plain.all)
        // The built-in data's copy, in an OUT a later run on another --data reuses.
        let builtin = ["train", "--model", "tiny", "--steps", "1", "--batch-size", "8", "--eval-examples", "0", "--quiet", "--out", dir + "/b"]
        XCTAssertEqual(CLI.sftDist(builtin).status, 0)
        let other = CLI.sftDist(builtin + ["--data", data])
        XCTAssertEqual(other.status, 0, other.all)
        XCTAssertTrue(other.stderr.contains("sft-dist: warning: \(dir)/b/data/train.jsonl is an earlier run's, which this run does not write"), other.all)
        // That file as this run's --data (spelled another way, --out with a trailing slash): not
        // named as stale, and the other file's path has no double slash.
        let own = CLI.sftDist(Array(builtin.dropLast(2)) + ["--out", dir + "/b/", "--data", dir + "/b/./data/train.jsonl"])
        XCTAssertEqual(own.status, 0, own.all)
        XCTAssertFalse(own.stderr.contains("train.jsonl is an earlier run's"), own.all)
        XCTAssertTrue(own.stderr.contains("sft-dist: warning: \(dir)/b/data/heldout.jsonl is an earlier run's"), own.all)
    }

    func testSelfTrainingMisuseFailsAtStartUp() throws {
        let dir = CLI.tempDir("selftrain-misuse")
        let data = writeData(dir)
        let base = ["train", "--model", "tiny", "--data", data.labelled, "--steps", "1", "--eval-every", "0", "--quiet"]
        /// `dryRun`: the recipe alone shows the misuse, so `--dry-run` refuses it too (it
        /// printed the recipe and exited 0 for each of these).
        func refused(_ extra: [String], _ message: String, dryRun: Bool = true) {
            let out = dir + "/out-\(extra.joined().filter(\.isLetter).prefix(30))"
            let r = CLI.sftDist(base + extra + ["--out", out])
            XCTAssertEqual(r.status, 1, r.all)
            XCTAssertTrue(r.stderr.contains(message), r.stderr)
            XCTAssertEqual(CLI.occurrences(of: "error:", in: r.stderr), 1, r.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/metrics.jsonl"), "nothing half-written")
            guard dryRun else { return }
            let dry = CLI.sftDist(base + extra + ["--out", out, "--dry-run"])
            XCTAssertEqual(dry.status, 1, "--dry-run \(extra): \(dry.all)")
            XCTAssertTrue(dry.stderr.contains(message), dry.stderr)
        }
        refused(["--self-train", "rft"], "--self-train rft needs --self-train-scorer")
        refused(["--self-train", "s3ft"], "--self-train s3ft needs --self-train-scorer")
        refused(["--self-train", "semievol"], "--self-train semievol needs --unlabelled FILE")
        refused(["--unlabelled", data.unlabelled], "--unlabelled is read by --self-train semievol or superhf")
        refused(["--self-train", "superhf", "--reward", "task"], "--self-train superhf trains with --objective superhf")
        refused(["--self-train", "superhf", "--objective", "superhf"], "--self-train superhf ranks completions by a reward")
        refused(["--self-train", "superhf", "--objective", "superhf", "--reward", "exact", "--unlabelled", data.unlabelled],
                "\(data.unlabelled):1: reward exact compares with a reference answer", dryRun: false)
        refused(["--self-train", "superhf", "--objective", "superhf", "--reward", "task", "--self-train-arg", "top_k=20"],
                "self_train_args: top_k (20) must be at most k (16)")
        refused(["--self-train", "semievol", "--unlabelled", data.unlabelled, "--self-train-arg", "k=0"], "self_train_args: k must be an integer in 1…64")
        // Keys the method does not read are refused, not ignored.
        refused(["--self-train", "semievol", "--unlabelled", data.unlabelled, "--self-train-arg", "top_k=2"],
                "self_train_args: top_k does nothing with --self-train semievol (its keys: k, temperature, top_p, ratio, prompts, max_new_tokens, percentile)")
        refused(["--self-train", "ssr", "--self-train-scorer", "task", "--self-train-arg", "k=4"],
                "self_train_args: k does nothing with --self-train ssr (its keys: ratio, prompts, max_new_tokens)")
        // The objective's argument given as self-training's is sent to --objective-arg (it was "unknown key").
        refused(["--self-train", "superhf", "--objective", "superhf", "--reward", "task", "--self-train-arg", "kl_coefficient=0.1"],
                "self_train_args: kl_coefficient is objective superhf's argument: give it as --objective-arg kl_coefficient=0.1")

        // A prompt the task scorer cannot read, at the end of the file: refused at start-up (it
        // ended the run at the round that drew it, 26 steps in, with no model saved).
        let late = dir + "/late.jsonl"
        try (String(contentsOfFile: data.unlabelled, encoding: .utf8) + "{\"prompt\": \"hello world\"}\n").write(toFile: late, atomically: true, encoding: .utf8)
        refused(["--self-train", "semievol", "--unlabelled", late, "--self-train-scorer", "task"],
                "late.jsonl:81: the task scorer reads a built-in task prompt (make-data)", dryRun: false)
        refused(["--self-train", "superhf", "--objective", "superhf", "--reward", "task", "--unlabelled", late],
                "late.jsonl:81: the task scorer reads a built-in task prompt", dryRun: false)
        let lateLabelled = dir + "/late-labelled.jsonl"
        try (String(contentsOfFile: data.labelled, encoding: .utf8) + "{\"prompt\": \"hello\", \"completion\": \" world\"}\n")
            .write(toFile: lateLabelled, atomically: true, encoding: .utf8)
        let rft = CLI.sftDist(["train", "--model", "tiny", "--data", lateLabelled, "--heldout-fraction", "0", "--eval-examples", "0",
                               "--steps", "1", "--quiet", "--self-train", "rft", "--self-train-scorer", "task", "--out", dir + "/rft-late"])
        XCTAssertEqual(rft.status, 1, rft.all)
        XCTAssertTrue(rft.stderr.contains("late-labelled.jsonl:61: the task scorer reads a built-in task prompt"), rft.all)

        // SuperHF with no completion finished trains the round's steps on --data's answers: said.
        let none = CLI.sftDist(base + ["--self-train", "superhf", "--objective", "superhf", "--reward", "format", "--steps", "2",
                                       "--self-train-arg", "prompts=4", "--self-train-arg", "k=2", "--self-train-arg", "max_new_tokens=1",
                                       "--out", dir + "/superhf-none"])
        XCTAssertEqual(none.status, 0, none.all)
        XCTAssertEqual(CLI.occurrences(of: "warning: self-training round 1 (step 1): superhf kept no completion", in: none.stderr), 1, none.all)

        // Unlabelled rows that carry completions: one warning naming the first, then the run goes on.
        let r = CLI.sftDist(base + ["--self-train", "semievol", "--unlabelled", data.labelled, "--out", dir + "/warned"])
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertEqual(CLI.occurrences(of: "warning:", in: r.stderr), 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("\(data.labelled):1: unlabelled rows carry completions (60 rows)"), r.stderr)
    }

    /// `--objective spin`: loss log 2 at each iteration's first step (the opponent is the model
    /// itself), the same losses under mpirun -n 1 and -n 2, and exact resume in the middle of an
    /// iteration (the opponent comes back from the checkpoint's old_policy). Planted: the opponent's
    /// sampling seed mixed with the rank count → -n 1 and -n 2 differ from step 1.
    func testSPINUnderMpirunAndResume() throws {
        let dir = CLI.tempDir("spin")
        let data = writeData(dir)
        let args = ["train", "--model", "tiny", "--data", data.labelled, "--objective", "spin", "--objective-arg", "iteration_steps=3",
                    "--objective-arg", "beta=0.5", "--batch-size", "5", "--micro-batch-size", "3", "--steps", "7", "--lr", "1e-2",
                    "--warmup-steps", "0", "--eval-examples", "0", "--eval-every", "0", "--quiet", "--checksum-every", "2"]
        var runs: [[[String: Double]]] = []
        for n in [1, 2] {
            let out = dir + "/n\(n)"
            let r = CLI.mpirun(n, args + ["--out", out], seconds: 180)
            XCTAssertEqual(r.status, 0, r.all)
            runs.append(CLI.trainingRows(out))
        }
        XCTAssertEqual(runs[0].count, 7)
        for step in [0, 3, 6] { XCTAssertEqual(runs[0][step]["loss"] ?? .nan, log(2), accuracy: 1e-6, "step \(step + 1) starts an iteration") }
        XCTAssertLessThan(runs[0][2]["loss"] ?? .nan, log(2) - 1e-4, "the loss never moves within an iteration")
        for (i, (a, b)) in zip(runs[0], runs[1]).enumerated() {
            for key in ["loss", "rewards/margins", "grad_norm", "loss_tokens"] {
                let x = a[key] ?? .nan, y = b[key] ?? .nan
                XCTAssertEqual(x, y, accuracy: 1e-5 * max(abs(x), 1e-3), "step \(i + 1) \(key): -n 1 \(x) vs -n 2 \(y)")
            }
        }
        XCTAssertEqual(CLI.sftDist(args + ["--out", dir + "/saved", "--save-every", "5"]).status, 0)
        let r = CLI.sftDist(args + ["--out", dir + "/resumed", "--resume", dir + "/saved/checkpoints/step-000005"])
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertEqual(Array(CLI.losses(dir + "/resumed").suffix(2)), Array(CLI.losses(dir + "/saved").suffix(2)), "steps 6-7 after resuming at step 5")
    }
}
