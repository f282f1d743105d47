import Foundation
import XCTest

/// Every rank reads its own inputs, so every subcommand that runs on several ranks checks that
/// they agree with rank 0's (`Training/Job/SameInputs.swift`): the settings, the model's
/// weights, the data, `--prompts`, and Open MPI's collective settings. Before, `score`,
/// `generate` and `select` trapped (index out of range) when a rank got other arguments, `eval`
/// and `score` mixed two files or two models' numbers with exit 0, and GRPO's `--prompts`
/// could differ silently.
final class RankAgreementTests: XCTestCase {
    /// Two rank directories, r0 and r1, each with `d.jsonl` (60 built-in rows; r1's with one
    /// row changed) and `same.jsonl` (identical), and a second file `d40.jsonl` in both.
    func ranks(_ name: String) throws -> (r0: String, r1: String) {
        let dir = CLI.tempDir(name), r0 = dir + "/r0", r1 = dir + "/r1"
        let made = CLI.sftDist(["make-data", "--out", dir + "/all.jsonl", "--count", "60"])
        XCTAssertEqual(made.status, 0, made.all)
        let rows = try String(contentsOfFile: dir + "/all.jsonl", encoding: .utf8).split(separator: "\n").map(String.init)
        for (r, first) in [(r0, rows[0]), (r1, "{\"prompt\": \"copy abc =\", \"completion\": \" abc\"}")] {
            try FileManager.default.createDirectory(atPath: r, withIntermediateDirectories: true)
            try (([first] + rows.dropFirst()).joined(separator: "\n") + "\n").write(toFile: r + "/d.jsonl", atomically: true, encoding: .utf8)
            try (rows.joined(separator: "\n") + "\n").write(toFile: r + "/same.jsonl", atomically: true, encoding: .utf8)
            try (rows.prefix(40).joined(separator: "\n") + "\n").write(toFile: r + "/d40.jsonl", atomically: true, encoding: .utf8)
        }
        return (r0, r1)
    }

    func expectOneLine(_ r: CLI.Result, _ message: String, code: Int32 = 1, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, code, r.all, file: file, line: line)
        XCTAssertEqual(CLI.occurrences(of: message, in: r.stderr), 1, r.all, file: file, line: line)
        XCTAssertFalse(r.all.contains("Fatal error") || r.all.contains("Program crashed"), r.all, file: file, line: line)
    }

    /// Ranks started with different command lines (mpirun `A : B`, a flag one node's binary
    /// does not know): rank 0 waited in MPI_Init for ever when another rank left without MPI
    /// (`--dry-run`, `--help`, an argument error, which only rank 0 printed), and two
    /// subcommands were compared setting by setting. One line from the rank that differs.
    func testRanksStartedWithOtherCommandLinesAreRefused() throws {
        let (r0, r1) = try ranks("launch")
        let train = ["train", "--model", "tiny", "--data", "same.jsonl", "--steps", "2", "--batch-size", "2", "--eval-every", "0", "--quiet", "--out", "run"]
        let prefix = "the ranks were started with different command lines: rank 1 "
        for (other, says) in [(train + ["--dry-run"], "runs `sft-dist train --dry-run`, rank 0 runs `sft-dist train`"),
                              (["--help"], "prints help, rank 0 runs `sft-dist train`"),
                              (train + ["--bogus"], "stopped at its arguments (Unknown option '--bogus'"),
                              (["make-data", "--out", "x.jsonl", "--count", "5"], "runs `sft-dist make-data`, rank 0 runs `sft-dist train`")] {
            let r = CLI.mpirunEach([(train, r0), (other, r1)], seconds: 60)
            expectOneLine(r, prefix + says)
            XCTAssertFalse(FileManager.default.fileExists(atPath: r0 + "/run/model"), "\(other): trained")
        }
        let score = ["score", "--model", "tiny", "--data", "same.jsonl"]
        expectOneLine(CLI.mpirunEach([(["eval", "--model", "tiny", "--data", "same.jsonl"], r0), (score, r1)], seconds: 60),
                      prefix + "runs `sft-dist score`, rank 0 runs `sft-dist eval`")
        // The same on every rank is not refused: help and make-data print and write once.
        let help = CLI.mpirunEach([(["--help"], r0), (["--help"], r1)], seconds: 60)
        XCTAssertEqual(help.status, 0, help.all)
        XCTAssertEqual(CLI.occurrences(of: "USAGE:", in: help.stdout), 1, help.stdout)
        let made = CLI.mpirunEach([(["make-data", "--out", r0 + "/m.jsonl", "--count", "5"], r0), (["make-data", "--out", r0 + "/m.jsonl", "--count", "5"], r1)], seconds: 60)
        XCTAssertEqual(made.status, 0, made.all)
        XCTAssertEqual(try String(contentsOfFile: r0 + "/m.jsonl", encoding: .utf8).split(separator: "\n").count, 5)
    }

    /// Each rank generates its share of eval's prompts (and train's held-out accuracy) with
    /// the stop ids of its own copy of the model's generation_config.json.
    func testAnotherGenerationConfigOnOneRankIsRefused() throws {
        let (r0, r1) = try ranks("generation-config")
        let t = CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--eval-examples", "0", "--quiet", "--out", r0 + "/run"])
        XCTAssertEqual(t.status, 0, t.all)
        try FileManager.default.copyItem(atPath: r0 + "/run", toPath: r1 + "/run")
        try #"{"eos_token_id": 61}"#.write(toFile: r1 + "/run/model/generation_config.json", atomically: true, encoding: .utf8)
        let message = "--model run/model: this rank's generation_config.json differs from rank 0's (eos_token_id 61 here)"
        let eval = ["eval", "--model", "run/model", "--data", "same.jsonl", "--examples", "4", "--max-new-tokens", "2"]
        expectOneLine(CLI.mpirunEach([(eval, r0), (eval, r1)]), message)
        let train = ["train", "--model", "run/model", "--steps", "1", "--eval-examples", "4", "--quiet", "--data", "same.jsonl", "--out", "out"]
        expectOneLine(CLI.mpirunEach([(train, r0), (train, r1)]), message)
        XCTAssertFalse(FileManager.default.fileExists(atPath: r0 + "/out/model"))
        try FileManager.default.copyItem(atPath: r1 + "/run/model/generation_config.json", toPath: r0 + "/run/model/generation_config.json")
        let same = CLI.mpirunEach([(eval, r0), (eval, r1)])
        XCTAssertEqual(same.status, 0, same.all)
    }

    /// A one-step tiny run in `r0/run`, copied to `r1/run` with n_head 4 instead of 2 in its
    /// model's config.json: the same tensors (32 = 4 × 8), another architecture.
    func tinyModelWithFourHeadsOnRankOne(_ r0: String, _ r1: String, run: String) throws {
        let t = CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--eval-examples", "0", "--quiet", "--out", r0 + "/" + run])
        XCTAssertEqual(t.status, 0, t.all)
        try FileManager.default.copyItem(atPath: r0 + "/" + run, toPath: r1 + "/" + run)
        let configPath = r1 + "/" + run + "/model/config.json"
        var config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath))) as? [String: Any])
        XCTAssertEqual(config["n_head"] as? Int, 2)
        config["n_head"] = 4
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: configPath))
    }

    /// `train` broadcasts rank 0's weights, so it compared no model: a node whose copy of the
    /// model had another config.json trained silently with it when the shapes were the same
    /// (n_head), and crashed in the broadcast (a segfault, no sft-dist line) when they were not.
    /// `eval` compared the weights only. Both name the key now, before anything is written.
    func testAnotherArchitectureOnOneRankIsRefused() throws {
        let (r0, r1) = try ranks("architecture")
        try tinyModelWithFourHeadsOnRankOne(r0, r1, run: "run")
        let message = "--model run/model: this rank's model differs from rank 0's: config.json n_head is 4 here and 2 on rank 0"
        let train = ["train", "--model", "run/model", "--steps", "2", "--eval-examples", "0", "--quiet", "--data", "same.jsonl", "--out", "out"]
        expectOneLine(CLI.mpirunEach([(train, r0), (train, r1)]), message)
        XCTAssertFalse(FileManager.default.fileExists(atPath: r0 + "/out"))
        let eval = ["eval", "--model", "run/model", "--data", "same.jsonl", "--examples", "0"]
        expectOneLine(CLI.mpirunEach([(eval, r0), (eval, r1)]), message)
        // bench --model too: it timed rank 1's other model with exit 0.
        let bench = ["bench", "--model", "run/model", "--seq-len", "32", "--steps", "1", "--warmup", "0", "--generate-tokens", "0", "--quiet"]
        expectOneLine(CLI.mpirunEach([(bench, r0), (bench, r1)]), message)
        // Other shapes: the default model's directory under the same name on rank 1.
        try FileManager.default.removeItem(atPath: r1 + "/run")
        let d = CLI.sftDist(["train", "--steps", "1", "--eval-examples", "0", "--quiet", "--out", r1 + "/run"])
        XCTAssertEqual(d.status, 0, d.all)
        expectOneLine(CLI.mpirunEach([(train, r0), (train, r1)]), "--model run/model: this rank's model differs from rank 0's: config.json n_embd is")
        XCTAssertFalse(FileManager.default.fileExists(atPath: r0 + "/out"))
    }

    /// Llama's config.json: the keys the model interprets are compared (rms_norm_eps on one node
    /// is refused), the ones it only writes back are not (`use_cache`, `_name_or_path`: two
    /// copies of one model saved by different tools run together).
    func testOnlyTheKeysALlamaInterpretsAreCompared() throws {
        let (r0, r1) = try ranks("llama-keys")
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../ModelsTests/Fixtures/hf/models/llama").standardized.path
        for r in [r0, r1] { try FileManager.default.copyItem(atPath: fixture, toPath: r + "/m") }
        let configPath = r1 + "/m/config.json"
        let original = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath))) as? [String: Any])
        func write(_ change: (inout [String: Any]) -> Void) throws {
            var config = original
            change(&config)
            try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: configPath))
        }
        let eval = ["eval", "--model", "m", "--data", "same.jsonl", "--examples", "0"]
        try write { $0["use_cache"] = false; $0["_name_or_path"] = "elsewhere/llama" }
        let cosmetic = CLI.mpirunEach([(eval, r0), (eval, r1)])
        XCTAssertEqual(cosmetic.status, 0, cosmetic.all)
        try write { $0["rms_norm_eps"] = 1e-6 }
        expectOneLine(CLI.mpirunEach([(eval, r0), (eval, r1)]),
                      "--model m: this rank's model differs from rank 0's: config.json rms_norm_eps is 1e-06 here and 1e-05 on rank 0")
    }

    /// `train --selection learnability` scores candidates with `--ref-model` on every rank:
    /// another architecture under that path on one node is refused, as the model's is.
    func testAnotherReferenceArchitectureForSelectionIsRefused() throws {
        let (r0, r1) = try ranks("selection-ref")
        try tinyModelWithFourHeadsOnRankOne(r0, r1, run: "ref")
        let train = ["train", "--model", "tiny", "--steps", "2", "--batch-size", "4", "--selection", "learnability",
                     "--ref-model", "ref/model", "--eval-examples", "0", "--quiet", "--data", "same.jsonl", "--out", "out"]
        expectOneLine(CLI.mpirunEach([(train, r0), (train, r1)]),
                      "--ref-model ref/model: this rank's model differs from rank 0's: config.json n_head is 4 here and 2 on rank 0")
        XCTAssertFalse(FileManager.default.fileExists(atPath: r0 + "/out/model"))
    }

    func testEverySubcommandRefusesRanksWithOtherSettings() throws {
        let (r0, r1) = try ranks("args")
        let commands: [(args: [String], flag: String, mine: String, theirs: String)] = [
            (["score", "--model", "tiny", "--data", "same.jsonl"], "--max-length", "64", "32"),
            (["eval", "--model", "tiny", "--max-new-tokens", "2", "--data", "same.jsonl"], "--examples", "4", "5"),
            (["select", "--model", "tiny", "--method", "loss", "--out", "kept.jsonl", "--data", "same.jsonl"], "--keep", "0.5", "0.4"),
            (["generate", "--model", "tiny", "--json", "--prompts", "same.jsonl"], "--max-new-tokens", "2", "3")]
        for c in commands {
            let r = CLI.mpirunEach([(c.args + [c.flag, c.mine], r0), (c.args + [c.flag, c.theirs], r1)])
            let shown = { (v: String) in c.flag == "--keep" ? "\(Double(v)!)" : v }
            expectOneLine(r, "the command's settings differ between ranks: \(c.flag) is \"\(shown(c.theirs))\" here and \"\(shown(c.mine))\" on rank 0")
            XCTAssertFalse(FileManager.default.fileExists(atPath: r0 + "/kept.jsonl"), c.args[0])
        }
        // bench compares its settings too: --zero on one rank deadlocked, another --batch-size
        // was reported as rank 0's.
        let bench = ["bench", "--steps", "1", "--warmup", "0", "--generate-tokens", "0", "--seq-len", "16", "--batch-size", "2", "--json", "--quiet"]
        expectOneLine(CLI.mpirunEach([(bench, r0), (bench + ["--zero", "1"], r1)]),
                      "the command's settings differ between ranks: --zero is \"1\" here and \"0\" on rank 0")
        // And its thread counts, which are what it times (reported as rank 0's layout).
        expectOneLine(CLI.mpirunEach([(bench + ["--threads", "1"], r0), (bench + ["--threads", "2"], r1)]),
                      "the command's settings differ between ranks: --threads (or OPENBLAS_NUM_THREADS) is \"2\" here and \"1\" on rank 0")
        // What does not change results may differ: threads per rank, a path spelled another way.
        let eval = ["eval", "--model", "tiny", "--max-new-tokens", "2", "--examples", "4"]
        let ok = CLI.mpirunEach([(eval + ["--data", "same.jsonl", "--threads", "1"], r0), (eval + ["--data", r1 + "/same.jsonl", "--threads", "2"], r1)])
        XCTAssertEqual(ok.status, 0, ok.all)
    }

    func testSameFileNameWithOtherContentOnOneRankIsRefused() throws {
        let (r0, r1) = try ranks("content")
        for c in [["score", "--model", "tiny"], ["eval", "--model", "tiny", "--examples", "4", "--max-new-tokens", "2"],
                  ["select", "--model", "tiny", "--method", "loss", "--keep", "0.5", "--out", "kept.jsonl"]] {
            let r = CLI.mpirunEach([(c + ["--data", "d.jsonl"], r0), (c + ["--data", "d.jsonl"], r1)])
            expectOneLine(r, "--data d.jsonl: this rank read other examples than rank 0 (the same number, 60, with other tokens)")
        }
        let generate = ["generate", "--model", "tiny", "--max-new-tokens", "2", "--json", "--prompts", "d.jsonl"]
        expectOneLine(CLI.mpirunEach([(generate, r0), (generate, r1)]), "--prompts d.jsonl: this rank's copy has other bytes than rank 0's")
        // train: GRPO's prompts are read by every rank for its rollouts.
        let grpo = ["train", "--model", "tiny", "--objective", "grpo", "--reward", "task", "--rollouts", "4", "--batch-size", "8",
                    "--steps", "2", "--eval-examples", "0", "--quiet", "--data", "same.jsonl", "--prompts", "d.jsonl", "--out", "out"]
        expectOneLine(CLI.mpirunEach([(grpo, r0), (grpo, r1)]), "--prompts d.jsonl: this rank's copy has other bytes than rank 0's")
        XCTAssertFalse(FileManager.default.fileExists(atPath: r0 + "/out/model"))
    }

    func testOtherWeightsUnderTheSameModelDirectoryAreRefused() throws {
        let (r0, r1) = try ranks("weights")
        for (dir, seed) in [(r0, "1"), (r1, "2")] {
            let t = CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--eval-examples", "0", "--seed", seed, "--quiet", "--out", dir + "/run"])
            XCTAssertEqual(t.status, 0, t.all)
        }
        let eval = ["eval", "--model", "run/model", "--data", "same.jsonl", "--examples", "0"]
        expectOneLine(CLI.mpirunEach([(eval, r0), (eval, r1)]), "--model run/model: this rank loaded other weights than rank 0")
        let score = ["score", "--model", "run/model", "--data", "same.jsonl"]
        expectOneLine(CLI.mpirunEach([(score, r0), (score, r1)]), "--model run/model: this rank loaded other weights than rank 0")
        // The same files everywhere pass.
        XCTAssertEqual(CLI.mpirunEach([(eval, r0), (eval, r0)]).status, 0)
    }

    /// Ranks with different libnbc algorithms for one iallreduce corrupted each other's heap
    /// (`free(): invalid next size`, a trap with no sft-dist line).
    func testCollectiveSettingsThatDifferBetweenRanksAreRefused() {
        let out = CLI.tempDir("mca")
        let key = "OMPI_MCA_coll_libnbc_iallreduce_algorithm"
        let train = [CLI.binary, "train", "--model", "tiny", "--steps", "3", "--eval-examples", "0", "--quiet", "--out", out]
        let r = CLI.run(["mpirun"] + CLI.mpirunFlags + ["-n", "1", "-x", "\(key)=2"] + train + [":", "-n", "1", "-x", "\(key)=3"] + train)
        expectOneLine(r, "Open MPI's collective settings differ between ranks: \(key) is \"3\" here and \"2\" on rank 0")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/model"))
        // Set on rank 0 only: the other rank's value is sft-dist's own default, which the user did
        // not give (it said `is "1" here`).
        let one = CLI.run(["mpirun"] + CLI.mpirunFlags + ["-n", "1", "-x", "\(key)=3"] + train + [":", "-n", "1"] + train)
        expectOneLine(one, "Open MPI's collective settings differ between ranks: \(key) is unset (sft-dist's default \"1\") here and \"3\" on rank 0")
        // Given as that default's value on one rank only: the same algorithm runs everywhere.
        let same = CLI.run(["mpirun"] + CLI.mpirunFlags + ["-n", "1"] + train + [":", "-n", "1", "-x", "\(key)=1"] + train)
        XCTAssertEqual(same.status, 0, same.all)
        // A blocking allreduce algorithm on rank 0 only: the check's own agreement must not be an
        // allreduce (it stalled until the watchdog, then blamed a dead rank).
        let tuned = ["-x", "OMPI_MCA_coll_tuned_use_dynamic_rules=1", "-x", "OMPI_MCA_coll_tuned_allreduce_algorithm=2"]
        let eval = [CLI.binary, "eval", "--model", "tiny", "--data", "builtin:tasks", "--examples", "0", "--watchdog", "20"]
        let t = CLI.run(["mpirun"] + CLI.mpirunFlags + ["-n", "1"] + tuned + eval + [":", "-n", "1"] + eval, seconds: 60)
        expectOneLine(t, "Open MPI's collective settings differ between ranks: OMPI_MCA_coll_tuned_allreduce_algorithm is unset here and \"2\" on rank 0")
    }

    /// Threads per rank are not compared (a node with more cores may run more), but the
    /// start-up line gave rank 0's count as every rank's: `mpirun -x V -n 1 … : -n 1 …` passes
    /// `-x` to the first app context only (a hostile review). Each rank's count is named.
    func testThreadsThatDifferBetweenRanksAreNamed() throws {
        let (r0, r1) = try ranks("threads")
        let train = ["train", "--model", "tiny", "--data", "same.jsonl", "--steps", "2", "--batch-size", "2", "--eval-every", "0",
                     "--eval-examples", "0", "--out", "run"]
        let r = CLI.mpirunEach([(train + ["--threads", "1"], r0), (train + ["--threads", "2"], r1)])
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stdout.contains("sft-dist: 2 ranks, threads per rank differ (1 on rank 0; 2 on rank 1; OPENBLAS_NUM_THREADS"), r.all)
        let even = CLI.mpirunEach([(train + ["--threads", "1", "--out", "even"], r0), (train + ["--threads", "1", "--out", "even"], r1)])
        XCTAssertTrue(even.stdout.contains("sft-dist: 2 ranks, 1 thread per rank, output in even/"), even.all)
    }
}
