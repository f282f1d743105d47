import Foundation
import XCTest

/// Issue 18 through the binary: endless or non-regular inputs, absurd model configs, and
/// non-finite weights end in one line and exit code 1 within the timeout, under an
/// address-space limit (`prlimit --as`) that the old whole-file reads and eager layouts broke.
final class HostileInputCLITests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("ModelsTests/Fixtures/hf").path
    /// 1.5 GB of address space: the binary needs about 0.3 GB to start.
    static let memoryLimit = "--as=1500000000"

    /// `sft-dist args…` under the memory limit and a 60 s timeout, `stdin` from a file.
    func limited(_ args: [String], stdin: String = "/dev/null", cwd: String? = nil) -> CLI.Result {
        CLI.run(["sh", "-c", "exec prlimit \(Self.memoryLimit) \"$@\" < \"$0\"", stdin, CLI.binary] + args, seconds: 60, cwd: cwd)
    }

    func expectOneLine(_ r: CLI.Result, _ fragment: String, code: Int32 = 1, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, code, r.all, file: file, line: line)
        let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("sft-dist: error") }
        XCTAssertEqual(errors.count, 1, r.all, file: file, line: line)
        XCTAssertTrue(errors.first?.contains(fragment) ?? false, "expected \"\(fragment)\" in: \(r.all)", file: file, line: line)
    }

    func testEndlessAndNonRegularInputsEndInOneLine() throws {
        let dir = CLI.tempDir("hostile-streams")
        // Standard input that never ends.
        expectOneLine(limited(["tokenize"], stdin: "/dev/zero"), "standard input: more than the 64.0 MiB allowed")
        // A device as data, on one rank and on two.
        expectOneLine(limited(["train", "--model", "tiny", "--data", "/dev/zero", "--steps", "1", "--out", dir + "/a"]),
                      "/dev/zero: not a regular file (a character device)")
        let two = CLI.mpirun(2, ["train", "--model", "tiny", "--data", "/dev/zero", "--steps", "1", "--out", dir + "/b"], seconds: 60)
        XCTAssertNotEqual(two.status, 0, two.all)
        XCTAssertTrue(two.stderr.contains("/dev/zero: not a regular file"), two.all)
        // A 4 GiB sparse file whose second line never ends: refused at the line limit, never held.
        let sparse = dir + "/sparse.jsonl"
        XCTAssertTrue(FileManager.default.createFile(atPath: sparse, contents: Data(#"{"prompt": "a", "completion": "b"}"#.utf8 + [0x0A])))
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: sparse))
        try h.truncate(atOffset: 1 << 32)
        try h.close()
        expectOneLine(limited(["eval", "--model", "tiny", "--data", sparse]), sparse + ":2: line longer than 1048576 bytes")
        // A FIFO as --prompts.
        XCTAssertEqual(mkfifo(dir + "/prompts.jsonl", 0o644), 0)
        expectOneLine(limited(["generate", "--model", "tiny", "--prompts", dir + "/prompts.jsonl"]), "prompts.jsonl: not a regular file (a FIFO)")
    }

    /// Bytes that are not UTF-8, as tokenize's standard input or its argument, are refused
    /// (not tokenized as U+FFFD); a real U+FFFD in the text is tokenized.
    func testInvalidUTF8IsRefusedByTokenize() throws {
        let dir = CLI.tempDir("hostile-utf8")
        let bad = dir + "/bad.txt"
        XCTAssertTrue(FileManager.default.createFile(atPath: bad, contents: Data([0x61, 0xFF, 0x62])))
        expectOneLine(limited(["tokenize"], stdin: bad), "standard input: invalid UTF-8")
        expectOneLine(CLI.run(["sh", "-c", "exec \"$0\" tokenize \"$(printf 'a\\377b')\"", CLI.binary], seconds: 60), "<text>: invalid UTF-8")
        let replacement = CLI.sftDist(["tokenize", "a\u{FFFD}b"])
        XCTAssertEqual(replacement.status, 0, replacement.all)
        XCTAssertEqual(replacement.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "[97, 239, 191, 189, 98]")
    }

    /// A file output whose path is a FIFO, a device or a symbolic link is refused, not renamed
    /// over (`--out /dev/full` once became a regular file); results that standard output
    /// could not take (a full disk) are an error, not a silent exit 0.
    func testOutputsThatAreNotFilesAndLostStandardOutput() throws {
        let dir = CLI.tempDir("hostile-outputs")
        let fifo = dir + "/fifo.jsonl", link = dir + "/link.jsonl"
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: dir + "/target.jsonl")
        // Output problems, exit 6, as score's below (make-data's exited 1).
        expectOneLine(limited(["make-data", "--out", fifo, "--count", "4"]), fifo + ": exists and is a FIFO, not a regular file", code: 6)
        expectOneLine(limited(["make-data", "--out", link, "--count", "4"]), link + ": is a symbolic link", code: 6)
        var st = stat()
        XCTAssertEqual(lstat(fifo, &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFIFO, "the FIFO is still a FIFO")
        XCTAssertEqual(lstat(link, &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFLNK, "the link is still a link")
        XCTAssertEqual(CLI.sftDist(["make-data", "--out", dir + "/d.jsonl", "--count", "8"]).status, 0)
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--batch-size", "2", "--eval-every", "0", "--eval-examples", "0",
                                    "--quiet", "--out", dir + "/run"]).status, 0)
        expectOneLine(limited(["score", "--model", dir + "/run/model", "--data", dir + "/d.jsonl", "--out", fifo]),
                      "--out \(fifo): exists and is a FIFO", code: 6)
        // Standard output on a full device: exit 6 naming it, for a plain command and a scoring run.
        expectOneLine(CLI.run(["sh", "-c", "exec \"$0\" tokenize hello > /dev/full", CLI.binary], seconds: 60),
                      "standard output: No space left on device", code: 6)
        expectOneLine(CLI.run(["sh", "-c", "exec \"$0\" score --model \"$1\" --data \"$2\" > /dev/full", CLI.binary, dir + "/run/model", dir + "/d.jsonl"],
                              seconds: 60), "standard output:", code: 6)
        // Help too (it exited 0 with nothing written).
        for help in ["help train", "--help", "eval --help"] {
            expectOneLine(CLI.run(["sh", "-c", "exec \"$0\" \(help) > /dev/full", CLI.binary], seconds: 60), "standard output: No space left on device", code: 6)
        }
    }

    /// A copy of a fixture model with `edit` applied to its config.json.
    func model(_ name: String, in dir: String, edit: (inout [String: Any]) -> Void = { _ in }) throws -> String {
        let copy = dir + "/" + name
        try? FileManager.default.removeItem(atPath: copy)
        try FileManager.default.copyItem(atPath: Self.fixtures + "/models/" + name, toPath: copy)
        var cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: copy + "/config.json"))) as! [String: Any]
        edit(&cfg)
        try JSONSerialization.data(withJSONObject: cfg).write(to: URL(fileURLWithPath: copy + "/config.json"))
        return copy
    }

    func testAbsurdModelFilesEndInOneLine() throws {
        let dir = CLI.tempDir("hostile-models")
        let deep = try model("gpt2", in: dir) { $0["n_layer"] = 1_000_000_000 }
        // (tokenize --model reads only the tokenizer: these model files do not concern it.)
        expectOneLine(limited(["score", "--model", deep, "--data", "/dev/null"]), deep + "/config.json: the model has", code: 5)
        expectOneLine(limited(["eval", "--model", deep, "--data", "/dev/null"]), deep + "/config.json: the model has", code: 5)
        let wide = try model("llama", in: dir) { $0["hidden_size"] = 1 << 40; $0["intermediate_size"] = 1 << 40; $0["head_dim"] = 8 }
        expectOneLine(limited(["eval", "--model", wide, "--data", "/dev/null"]), wide + "/config.json: the model's size overflows")
        let fifo = try model("qwen2", in: dir)
        try FileManager.default.removeItem(atPath: fifo + "/model.safetensors")
        XCTAssertEqual(mkfifo(fifo + "/model.safetensors", 0o644), 0)
        expectOneLine(limited(["generate", "--model", fifo, "--prompt", "hi"]), fifo + "/model.safetensors: not a regular file")
        let zero = try model("gpt2", in: dir)
        try FileManager.default.removeItem(atPath: zero + "/config.json")
        try FileManager.default.createSymbolicLink(atPath: zero + "/config.json", withDestinationPath: "/dev/zero")
        expectOneLine(limited(["eval", "--model", zero, "--data", "/dev/null"]), zero + "/config.json: not a regular file (a character device)")
        // A tokenizer.json the size of one with 10^6 added tokens (136 MB): refused before parsing.
        let big = dir + "/tokenizer.json"
        XCTAssertTrue(FileManager.default.createFile(atPath: big, contents: Data("{".utf8)))
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: big))
        try h.truncate(atOffset: 136_000_000)
        try h.close()
        expectOneLine(limited(["tokenize", "--tokenizer", big, "hi"]), big + ": is 129.7 MiB, more than the 64.0 MiB allowed for a tokenizer.json")
        // The same 10^6 added tokens written compactly (≈ 40 MB, under the size limit): Foundation's
        // parse of them took ≈ 3 GB; they are counted and refused before parsing, under the limit.
        let compact = dir + "/compact-tokenizer.json"
        var text = #"{"model": {"type": "BPE", "vocab": {}, "merges": []}, "added_tokens": ["#
        text += (0..<1_000_000).map { #"{"id":\#($0),"content":"<t\#($0)>","special":true}"# }.joined(separator: ",")
        text += "]}"
        try Data(text.utf8).write(to: URL(fileURLWithPath: compact))
        expectOneLine(limited(["tokenize", "--tokenizer", compact, "hi"]), compact + ": more than 135168 JSON objects")
        let nan = try model("gpt2", in: dir)
        try Data(#"{"model_type": "gpt2", "n_embd": NaN}"#.utf8).write(to: URL(fileURLWithPath: nan + "/config.json"))
        expectOneLine(limited(["eval", "--model", nan, "--data", "/dev/null"]), "(NaN and Infinity are not JSON numbers)")
    }

    /// A NaN weight: refused at load, naming the tensor, instead of `nan` in score's JSON.
    func testNonFiniteWeightsAreRefusedByScoreEvalAndGenerate() throws {
        let dir = CLI.tempDir("hostile-nan")
        let trained = dir + "/run"
        let r = CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--out", trained, "--eval-every", "0"], seconds: 120)
        XCTAssertEqual(r.status, 0, r.all)
        let weights = trained + "/model/model.safetensors"
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: weights)))
        let headerEnd = 8 + Int(bytes[0]) + Int(bytes[1]) << 8 + Int(bytes[2]) << 16
        for (k, b) in [0x00, 0x00, 0xC0, 0x7F].enumerated() { bytes[headerEnd + 4 + k] = UInt8(b) }  // element 1 of the first tensor = NaN
        try Data(bytes).write(to: URL(fileURLWithPath: weights))
        let data = dir + "/d.jsonl"
        try Data(#"{"prompt": "a", "completion": "b"}"#.utf8).write(to: URL(fileURLWithPath: data))
        for args in [["score", "--data", data], ["eval", "--data", data], ["generate", "--prompt", "a"]] {
            expectOneLine(limited(args + ["--model", trained + "/model"]), "non-finite value (first: nan at element 1)")
        }
    }

    /// Built-in data that every example fails (too short a --max-length) is refused naming
    /// builtin:tasks, not OUT/data/train.jsonl, which a refused run never writes; a run
    /// that starts says where it writes those rows.
    func testRefusedBuiltInDataNamesItselfNotAFileNeverWritten() throws {
        let out = CLI.tempDir("hostile-builtin") + "/run"
        let r = CLI.sftDist(["train", "--max-length", "8", "--truncation", "drop", "--steps", "1", "--out", out], seconds: 60)
        XCTAssertNotEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stderr.contains("error: builtin:tasks: no examples left"), r.stderr)
        XCTAssertFalse(r.all.contains("data/train.jsonl"), r.all)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/data"))
        let ok = CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--batch-size", "2", "--eval-every", "0", "--out", out], seconds: 60)
        XCTAssertEqual(ok.status, 0, ok.all)
        XCTAssertTrue(ok.stdout.contains("from builtin:tasks (the run writes them to \(out)/data/train.jsonl)"), ok.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/data/train.jsonl"))
    }

    /// `--objective nll` over a recipe with dft's objective_args trains nll and says the
    /// file's arguments are not used (it was refused for arguments nll never takes).
    func testObjectiveFlagOverARecipeDropsTheRecipesArguments() throws {
        let dir = CLI.tempDir("hostile-replaced-objective")
        try Data("model: tiny\nobjective: otr\nobjective_args: {k: 4}\nbatch_size: 2\neval_every: 0\n".utf8).write(to: URL(fileURLWithPath: dir + "/r.yaml"))
        let r = CLI.sftDist(["train", "--config", dir + "/r.yaml", "--objective", "nll", "--steps", "1", "--out", dir + "/run"], seconds: 60)
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stdout.contains("\(dir)/r.yaml:3: objective_args not used: they are otr's, and --objective nll replaces it"), r.stdout)
        XCTAssertTrue(r.stdout.contains("objective: nll"), r.stdout)
    }

    /// `--dry-run`'s stdout is the recipe alone, so `> r.yaml` saves one that runs: its notes go
    /// to stderr (a note printed into the YAML made the saved file invalid YAML).
    func testDryRunPrintsNotesToStderrAndOnlyTheRecipeToStdout() throws {
        let dir = CLI.tempDir("hostile-dry-run-notes")
        try Data("model: tiny\nobjective: otr\nobjective_args: {k: 4}\n".utf8).write(to: URL(fileURLWithPath: dir + "/r.yaml"))
        let r = CLI.sftDist(["train", "--dry-run", "--config", dir + "/r.yaml", "--objective", "nll", "--out", dir + "/run"], seconds: 30)
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stderr.contains("\(dir)/r.yaml:3: objective_args not used"), r.all)
        XCTAssertFalse(r.stdout.contains("not used"), r.stdout)
        try Data(r.stdout.utf8).write(to: URL(fileURLWithPath: dir + "/d.yaml"))
        let again = CLI.sftDist(["train", "--dry-run", "--config", dir + "/d.yaml"], seconds: 30)
        XCTAssertEqual(again.status, 0, again.all)
        XCTAssertTrue(again.stdout.contains("objective: nll"), again.stdout)
    }

    /// Settings that cannot run together are refused by `--dry-run` as by a run, naming the
    /// recipe's line where a file set them (a hostile review: they were found only once the
    /// model and data had loaded, so `--dry-run` passed them, and named flags never given).
    func testSettingsThatCannotCombineAreRefusedByDryRunNamingTheRecipeLine() throws {
        let dir = CLI.tempDir("hostile-combine")
        for (yaml, message) in [("optimizer: sgd\nzero: 1\n", "r.yaml:3: zero 1: optimizer sgd cannot shard its state (only adamw can)"),
                                ("zero: 2\nl2_init: 0.1\n", "r.yaml:2: zero 2 with DIR/r.yaml:3: l2_init: the penalty is added by the unsharded update"),
                                ("lora_rank: 2\nfreeze: wte\n", "r.yaml:3: freeze cannot be combined with DIR/r.yaml:2: lora_rank"),
                                ("lora_rank: 2\ntrainable: mlp\n", "r.yaml:3: trainable cannot be combined with DIR/r.yaml:2: lora_rank"),
                                ("scored_data: true\n", "r.yaml:2: scored_data trains objective grpo on the rows of --data as scored samples, not objective nll"),
                                ("objective: grpo\nrewards: [task=0]\n", "r.yaml:3: rewards: every reward weight is 0 (task=0)"),
                                ("objective: grpo\n", "r.yaml:2: objective grpo samples rollouts and needs a reward")] {
            let path = dir + "/r.yaml"
            try Data(("model: tiny\n" + yaml).utf8).write(to: URL(fileURLWithPath: path))
            let r = CLI.sftDist(["train", "--dry-run", "--config", path, "--out", dir + "/run"], seconds: 30)
            XCTAssertEqual(r.status, 1, "\(yaml): \(r.all)")
            let expected = dir + "/" + message.replacingOccurrences(of: "DIR", with: dir)
            XCTAssertTrue(r.stderr.contains(expected), "expected \(expected) in:\n\(r.stderr)")
            XCTAssertEqual(CLI.occurrences(of: "sft-dist: error", in: r.stderr), 1, r.all)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/run"), "a dry run wrote its output directory")
    }

    /// A run whose input lies in what it writes is refused before it writes anything: the
    /// README's warm start (`--model sft-dist-out/model`, no --out) replaced the model it loaded.
    func testARunDoesNotWriteOverItsOwnInputs() throws {
        let out = CLI.tempDir("hostile-own-input") + "/run"
        let quiet = ["--steps", "1", "--batch-size", "2", "--eval-every", "0", "--quiet"]
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--out", out] + quiet).status, 0)
        let weights = out + "/model/model.safetensors"
        let before = try Data(contentsOf: URL(fileURLWithPath: weights))
        for (args, needle) in [(["--model", out + "/model/"], "--model \(out)/model/ is in \(out)/model, which this run writes (--out \(out))"),
                               (["--model", "tiny", "--eval-data", "x=" + out + "/data/train.jsonl"], "--eval-data x=\(out)/data/train.jsonl is in \(out)/data/train.jsonl, which this run writes"),
                               (["--model", out + "/model", "--out", out + "/"], "--model \(out)/model is in \(out)/model, which this run writes (--out \(out)/)")] {
            let r = CLI.sftDist(["train"] + args + (args.contains("--out") ? [] : ["--out", out]) + quiet, seconds: 60)
            XCTAssertEqual(r.status, 1, "\(args): \(r.all)")
            XCTAssertEqual(CLI.occurrences(of: needle, in: r.stderr), 1, "\(args): \(r.stderr)")
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: weights)), before, "the input model was replaced")
        // What the run does not write is not refused: its held-out file when --heldout is given.
        let held = CLI.sftDist(["train", "--model", "tiny", "--heldout", out + "/data/heldout.jsonl", "--out", out] + quiet, seconds: 60)
        XCTAssertEqual(held.status, 0, held.all)
        // Into another directory the same warm start trains.
        XCTAssertEqual(CLI.sftDist(["train", "--model", out + "/model", "--out", out + "-2"] + quiet).status, 0)
    }

    /// The final line names the model directories this run wrote, not what an earlier run into
    /// the same --out left (model-ema/ from a run with --ema).
    func testDoneLineNamesOnlyWhatThisRunWrote() throws {
        let out = CLI.tempDir("hostile-done-line") + "/run"
        let base = ["train", "--model", "tiny", "--steps", "2", "--batch-size", "2", "--eval-every", "0", "--out", out]
        let ema = CLI.sftDist(base + ["--ema", "0.9"], seconds: 60)
        XCTAssertTrue(ema.stdout.contains("model in \(out)/model/ (also \(out)/model-ema/)"), ema.stdout)
        let plain = CLI.sftDist(base, seconds: 60)
        XCTAssertEqual(plain.status, 0, plain.all)
        XCTAssertTrue(plain.stdout.contains("model in \(out)/model/, metrics in"), plain.stdout)
    }

    /// 150,000 spaces in one text: BPE merging finishes in seconds (it was quadratic).
    func testLongWhitespaceRunTokenizesQuickly() throws {
        let dir = CLI.tempDir("hostile-spaces")
        let text = dir + "/spaces.txt"
        try Data(String(repeating: " ", count: 150_000).utf8).write(to: URL(fileURLWithPath: text))
        for kind in ["gpt2", "llama3"] {
            let r = limited(["tokenize", "--tokenizer", Self.fixtures + "/tokenizers/\(kind)/tokenizer.json"], stdin: text)
            XCTAssertEqual(r.status, 0, "\(kind): \(r.stderr)")
            XCTAssertTrue(r.stdout.hasPrefix("["), kind)
        }
    }

    /// --skip-bad-lines counts what it skipped in --heldout and --eval-data files too, as it
    /// does for --data (they were dropped without a word: "held-out: 2 examples from bad.jsonl").
    func testSkippedLinesOfHeldOutAndEvalDataAreCounted() throws {
        let dir = CLI.tempDir("skip-counted")
        let row = "{\"prompt\": \"add 1 2 =\", \"completion\": \" 3\"}\n"
        try (row + "{bad\n" + row).write(toFile: dir + "/bad.jsonl", atomically: true, encoding: .utf8)
        let base = ["train", "--model", "tiny", "--steps", "1", "--eval-examples", "0", "--skip-bad-lines"]
        let held = CLI.sftDist(base + ["--heldout", dir + "/bad.jsonl", "--out", dir + "/a"])
        XCTAssertEqual(held.status, 0, held.all)
        XCTAssertTrue(held.stdout.contains("held-out: loaded 2 of 2 records from \(dir)/bad.jsonl (skipped 1 bad line (first: \(dir)/bad.jsonl:2:"), held.all)
        let named = CLI.sftDist(base + ["--eval-data", "e=\(dir)/bad.jsonl", "--out", dir + "/b"])
        XCTAssertEqual(named.status, 0, named.all)
        XCTAssertTrue(named.stdout.contains("--eval-data e: loaded 2 of 2 records from \(dir)/bad.jsonl (skipped 1 bad line (first: \(dir)/bad.jsonl:2:"), named.all)
    }

    /// A line break inside a path is written \n in the one-line error (the message was split
    /// over two lines: "sft-dist: error: d/no" and "such.jsonl: no such file").
    func testLineBreakInAPathStaysOnOneLine() throws {
        let dir = CLI.tempDir("newline-path")
        for args in [["train", "--model", "tiny", "--data", dir + "/no\nsuch.jsonl", "--out", dir + "/a"],
                     ["eval", "--model", "tiny", "--data", dir + "/no\nsuch.jsonl"]] {
            let r = CLI.sftDist(args)
            XCTAssertEqual(r.status, 1, r.all)
            let lines = r.stderr.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, r.stderr)
            XCTAssertEqual(lines.first.map(String.init), "sft-dist: error: \(dir)/no\\nsuch.jsonl: no such file", r.stderr)
        }
        try "model: tiny\ndata: \"\(dir)/x\\ny.jsonl\"\n".write(toFile: dir + "/r.yaml", atomically: true, encoding: .utf8)
        let r = CLI.sftDist(["train", "--config", dir + "/r.yaml", "--out", dir + "/b"])
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertEqual(r.stderr, "sft-dist: error: \(dir)/r.yaml:2: data \(dir)/x\\ny.jsonl: no such file\n")
    }
}
