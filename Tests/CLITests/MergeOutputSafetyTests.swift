import Foundation
import XCTest

/// `merge`, `merge-lora` and `export` write their `--out` by renaming a finished copy over it,
/// which deletes what was there: so `--out` must be new or a model directory, never a run's
/// directory, a directory holding the inputs, an input itself, or a file. And `merge` names
/// each bad input for what it is, accepts a model beside its own export (one tokenizer, more
/// files), and refuses weights that give zeros or overflow float32, writing nothing.
final class MergeOutputSafetyTests: XCTestCase {
    static let quiet = ["--steps", "2", "--eval-every", "0", "--eval-examples", "0", "--quiet", "--batch-size", "4", "--micro-batch-size", "2"]

    /// Names in `dir`, sorted (empty when absent).
    static func listing(_ dir: String) -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted() }

    func testOutputsThatAreNotModelDirectoriesAreRefusedAndKept() throws {
        let out = CLI.tempDir("merge-out")
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--lora-rank", "4", "--save-every", "1", "--out", out + "/lora"] + Self.quiet).status, 0)
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--out", out + "/a"] + Self.quiet).status, 0)
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--seed", "9", "--out", out + "/b"] + Self.quiet).status, 0)
        let run = Self.listing(out + "/lora")
        XCTAssertTrue(run.contains("checkpoints") && run.contains("model-base"), "\(run)")
        let p = out + "/p"
        try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: out + "/a/model", toPath: p + "/A")
        try FileManager.default.copyItem(atPath: out + "/b/model", toPath: p + "/B")
        try "notes".write(toFile: p + "/notes.txt", atomically: true, encoding: .utf8)
        try "hi".write(toFile: out + "/afile", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: out + "/notes", withIntermediateDirectories: true)
        try "keep".write(toFile: out + "/notes/todo.txt", atomically: true, encoding: .utf8)
        let pBefore = Self.listing(p)

        let mergeLoRA = ["merge-lora", "--model", out + "/lora/model-base", "--adapter", out + "/lora/model", "--out"]
        for (args, needle) in [(mergeLoRA + [out + "/lora"], "holds the input"),
                               (mergeLoRA + [out + "/afile"], "exists and is not a directory"),
                               (mergeLoRA + [out + "/notes"], "is not a model directory"),
                               (["merge", p + "/A", p + "/B", "--out", p], "holds the input"),
                               (["merge", p + "/A", p + "/B", "--out", p + "/A"], "is the input"),
                               // Inside an input: it then held a subdirectory and was no model any more.
                               (mergeLoRA + [out + "/lora/model/sub"], "is inside the input"),
                               (["export", "--model", p + "/A", "--out", p + "/A/sub"], "is inside the input"),
                               (["export", "--model", out + "/a/model", "--out", out + "/lora"], "holds checkpoints/")] {
            let r = CLI.sftDist(args)
            XCTAssertNotEqual(r.status, 0, "\(args): \(r.all)")
            XCTAssertTrue(r.stderr.contains(needle), "\(args): \(r.all)")
            XCTAssertEqual(CLI.occurrences(of: "sft-dist: error", in: r.stderr), 1, r.all)
        }
        XCTAssertEqual(Self.listing(out + "/lora"), run, "the run's directory was touched")
        XCTAssertEqual(Self.listing(p), pBefore, "the inputs' directory was touched")
        XCTAssertEqual(try String(contentsOfFile: out + "/afile", encoding: .utf8), "hi")
        XCTAssertEqual(Self.listing(out + "/notes"), ["todo.txt"])

        // A model directory is replaced; a copy left by a killed save (its process gone) is removed.
        try FileManager.default.createDirectory(atPath: out + "/m.tmp-999999", withIntermediateDirectories: true)
        let first = CLI.sftDist(["merge", out + "/a/model", out + "/b/model", "--out", out + "/m"])
        XCTAssertEqual(first.status, 0, first.all)
        let again = CLI.sftDist(["merge-lora", "--model", out + "/lora/model-base", "--adapter", out + "/lora/model", "--out", out + "/m"])
        XCTAssertEqual(again.status, 0, again.all)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/m.tmp-999999"), "a dead save's copy was left")
        XCTAssertEqual(CLI.sftDist(["eval", "--model", out + "/m", "--data", out + "/a/data/heldout.jsonl", "--examples", "4"]).status, 0)
    }

    /// A command's --out given by hand is replaced only when it holds nothing a save would not
    /// write again: not a checkpoint's model, a LoRA run's adapter, a directory with a user's
    /// file, a symbolic link or an empty path. And score/select never replace a file of the
    /// model they read (score --out run/model/model.safetensors replaced the weights).
    func testCommandOutputsThatASaveWouldDamageAreRefused() throws {
        let out = CLI.tempDir("out-damage")
        let four = ["train", "--model", "tiny", "--steps", "4", "--eval-every", "0", "--eval-examples", "0", "--quiet", "--batch-size", "4", "--save-every", "2"]
        XCTAssertEqual(CLI.sftDist(four + ["--out", out + "/a"]).status, 0)
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--lora-rank", "2", "--out", out + "/lora"] + Self.quiet).status, 0)
        let fm = FileManager.default
        try fm.copyItem(atPath: out + "/a/model", toPath: out + "/noted")
        try "mine".write(toFile: out + "/noted/README.md", atomically: true, encoding: .utf8)
        try fm.copyItem(atPath: out + "/a/model", toPath: out + "/target")
        try fm.createSymbolicLink(atPath: out + "/link", withDestinationPath: out + "/target")
        let checkpoint = out + "/a/checkpoints/step-000002/model"
        let watched = [checkpoint, out + "/lora/model", out + "/noted", out + "/target"]
        let before = watched.map(Self.listing)
        let weights = try Data(contentsOf: URL(fileURLWithPath: out + "/a/model/model.safetensors"))
        let export = ["export", "--model", out + "/a/model", "--out"]
        for (args, needle) in [(export + [checkpoint], "is part of the checkpoint"),
                               (export + [out + "/lora/model"], "holds a LoRA adapter (adapter_config.json)"),
                               (export + [out + "/noted"], "holds README.md, which a save does not write"),
                               (export + [out + "/link"], "is a symbolic link"),
                               (export + [""], "--out: an empty path"),
                               (["score", "--model", out + "/a/model", "--data", out + "/a/data/heldout.jsonl", "--out", out + "/a/model/model.safetensors"],
                                "is a file of the input --model"),
                               (["select", "--model", out + "/a/model", "--data", out + "/a/data/train.jsonl", "--method", "loss", "--keep", "0.5",
                                 "--out", out + "/sel.jsonl", "--scores", out + "/a/model/config.json"], "is a file of the input --model")] {
            let r = CLI.sftDist(args)
            XCTAssertNotEqual(r.status, 0, "\(args): \(r.all)")
            XCTAssertTrue(r.stderr.contains(needle), "\(args): \(r.all)")
            XCTAssertEqual(CLI.occurrences(of: "sft-dist: error", in: r.stderr), 1, r.all)
        }
        XCTAssertEqual(watched.map(Self.listing), before)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/a/model/model.safetensors")), weights)
        XCTAssertEqual(try String(contentsOfFile: out + "/noted/README.md", encoding: .utf8), "mine")
        XCTAssertEqual(try fm.destinationOfSymbolicLink(atPath: out + "/link"), out + "/target")
        let resumed = CLI.sftDist(four + ["--resume", checkpoint.replacingOccurrences(of: "/model", with: ""), "--out", out + "/a2"])
        XCTAssertEqual(resumed.status, 0, resumed.all)
        // Other files in the model's directory may be written, and again (scores beside it).
        for _ in 0..<2 {
            let s = CLI.sftDist(["score", "--model", out + "/a/model", "--data", out + "/a/data/heldout.jsonl", "--out", out + "/a/model/scores.jsonl"])
            XCTAssertEqual(s.status, 0, s.all)
        }
        // A plain model directory (the export's own earlier output) is still replaced.
        XCTAssertEqual(CLI.sftDist(export + [out + "/target"]).status, 0)
    }

    /// Commands that do one process's work, launched by mpirun as every command may be, run
    /// once (rank 0): every rank wrote the same --out at once (one rank's rename over another's
    /// half-written copy, a missing config.json) and printed each line once per rank.
    func testSingleProcessCommandsRunOnceUnderMpirun() throws {
        let out = CLI.tempDir("out-once")
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--out", out + "/a"] + Self.quiet).status, 0)
        for i in 0..<3 {
            let r = CLI.mpirun(4, ["export", "--model", out + "/a/model", "--out", out + "/e"])
            XCTAssertEqual(r.status, 0, "run \(i): \(r.all)")
            XCTAssertEqual(CLI.occurrences(of: "exported", in: r.stdout), 1, r.all)
            XCTAssertTrue(Self.listing(out + "/e").contains("config.json"), "run \(i): \(Self.listing(out + "/e"))")
        }
        XCTAssertEqual(Self.listing(out).filter { $0.contains(".tmp-") }, [])
        let t = CLI.mpirun(2, ["tokenize", "ab"])
        XCTAssertEqual(t.status, 0, t.all)
        XCTAssertEqual(t.stdout.split(separator: "\n").count, 1, t.all)
        let m = CLI.mpirun(2, ["make-data", "--out", "-", "--count", "3"])
        XCTAssertEqual(m.status, 0, m.all)
        XCTAssertEqual(m.stdout.split(separator: "\n").count, 3, m.all)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "-"))
    }

    func testMergeNamesEachBadInputAndRefusesDegenerateWeights() throws {
        let out = CLI.tempDir("merge-inputs")
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--out", out + "/a"] + Self.quiet).status, 0)
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--seed", "9", "--out", out + "/b"] + Self.quiet).status, 0)
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--lora-rank", "4", "--out", out + "/lora"] + Self.quiet).status, 0)
        let a = out + "/a/model", b = out + "/b/model", copy = out + "/copy"
        try FileManager.default.copyItem(atPath: a, toPath: copy)
        for (args, needle) in [([a, out + "/nonexist"], "nonexist: no such model directory (merge reads saved models"),
                               ([a, "tiny"], "tiny: a preset, whose weights are random; merge reads saved models"),
                               ([a, out + "/lora/model"], "holds a LoRA adapter (adapter_config.json), not a model: make full weights first with sft-dist merge-lora"),
                               ([a, b, "--weights", "0,0"], "every weight is 0"),
                               ([a, copy, "--weights", "1,-1"], "the weighted sum is 0 in every tensor"),
                               // One directory under two names merged with itself: a copy, written as a merge.
                               ([a, a + "/"], "are one model directory, which merged with itself gives a copy of it"),
                               ([a, b, "--weights", "1e300,1e300"], "beyond float32"),
                               // Finite, but past √(Float.max): every product of the model would overflow.
                               ([a, b, "--weights", "1e20,1e20"], "past 1.8e19 (√ of float32's largest) where products overflow; nothing written"),
                               // Sums that underflow were said to "cancel".
                               ([a, b, "--weights", "1e-46,1e-46"], "(the weights cancel, or are too small for float32)")] {
            let r = CLI.sftDist(["merge"] + args + ["--out", out + "/m"])
            XCTAssertEqual(r.status, 1, "\(args): \(r.all)")
            XCTAssertTrue(r.stderr.contains(needle), "\(args): \(r.all)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/m"), "\(args) wrote a model")
        }
        // `--out DIR/` is DIR, written fresh and then replaced (its temporary copy sat inside it).
        for _ in 0..<2 {
            let slash = CLI.sftDist(["merge", a, b, "--out", out + "/slash/"])
            XCTAssertEqual(slash.status, 0, slash.all)
            XCTAssertFalse(slash.stdout.contains("the weights sum to"), slash.all)
        }
        // Weights that do not sum to 1 are a sum, meant or not: said.
        let sum = CLI.sftDist(["merge", a, b, "--weights", "0.7,0.7", "--out", out + "/sum"])
        XCTAssertEqual(sum.status, 0, sum.all)
        XCTAssertTrue(sum.stdout.contains("note: the weights sum to 1.4, not 1: every tensor, norms' gains and biases too, is scaled as a sum, not averaged"), sum.all)
        XCTAssertEqual(Self.listing(out + "/slash").filter { $0.hasPrefix(".tmp") }, [])
        XCTAssertEqual(CLI.sftDist(["eval", "--model", out + "/slash", "--data", out + "/a/data/heldout.jsonl", "--examples", "2"]).status, 0)
        // The same byte tokenizer with Hugging Face files added by export: the same tokenizer.
        XCTAssertEqual(CLI.sftDist(["export", "--model", a, "--out", out + "/ax"]).status, 0)
        let r = CLI.sftDist(["merge", a, out + "/ax", "--out", out + "/m"])
        XCTAssertEqual(r.status, 0, r.all)
    }
}

/// Three defects a review of export, merge and merge-lora found.
final class MergeOutputFindingsTests: XCTestCase {
    /// `train --merge-lora` wrote a merged model whose weights reached 2e22 (exit 0), which
    /// score and merge-lora then refused: the merge is checked before anything is written.
    func testTrainMergeLoRARefusesAnOverflowingMerge() throws {
        let out = CLI.tempDir("merge-lora-overflow")
        XCTAssertEqual(CLI.sftDist(["make-data", "--count", "16", "--out", out + "/d.jsonl"]).status, 0)
        let r = CLI.sftDist(["train", "--model", ChatTemplateSaveTests.models + "/llama", "--data", out + "/d.jsonl", "--steps", "1",
                             "--batch-size", "8", "--micro-batch-size", "8", "--lr", "1e12", "--warmup-steps", "0", "--lora-rank", "4",
                             "--merge-lora", "--eval-examples", "0", "--quiet", "--out", out + "/run"])
        XCTAssertEqual(r.status, 6, "the final save's failure: \(r.all)")
        XCTAssertTrue(r.stderr.contains("--merge-lora: the trained adapter merged into") && r.stderr.contains("past 1.8e19 where products overflow"), r.all)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/run/model-merged"), r.all)
        let sane = CLI.sftDist(["train", "--model", ChatTemplateSaveTests.models + "/llama", "--data", out + "/d.jsonl", "--steps", "1",
                                "--batch-size", "8", "--micro-batch-size", "8", "--lora-rank", "4", "--merge-lora", "--eval-examples", "0",
                                "--quiet", "--out", out + "/sane"])
        XCTAssertEqual(sane.status, 0, sane.all)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/sane/model-merged/model.safetensors"), sane.all)
    }

    /// A pad_token_id past the vocabulary was copied into the export, which transformers then
    /// cannot load ("Padding_idx must be within num_embeddings"): it is written as null.
    func testExportNullsAPadIdOutsideTheVocabulary() throws {
        let dir = CLI.tempDir("export-pad")
        try FileManager.default.copyItem(atPath: ChatTemplateSaveTests.models + "/llama", toPath: dir + "/m")
        let configPath = dir + "/m/config.json"
        var config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath))) as? [String: Any])
        config["pad_token_id"] = 5000
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: configPath))
        let r = CLI.sftDist(["export", "--model", dir + "/m", "--out", dir + "/x"])
        XCTAssertEqual(r.status, 0, r.all)
        let written = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/x/config.json"))) as? [String: Any])
        XCTAssertTrue(written["pad_token_id"] is NSNull, "\(written["pad_token_id"] ?? "absent")")
    }

    /// A merge of a run's model (sft-dist's own tokenizer file only) with its export wrote the
    /// Hugging Face files only when the export came first: now whenever either has them.
    func testMergeWritesHuggingFaceFilesWhicheverComesFirst() throws {
        let out = CLI.tempDir("merge-order")
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--out", out + "/a"] + MergeOutputSafetyTests.quiet).status, 0)
        XCTAssertEqual(CLI.sftDist(["export", "--model", out + "/a/model", "--out", out + "/x"]).status, 0)
        for (i, pair) in [[out + "/a/model", out + "/x"], [out + "/x", out + "/a/model"]].enumerated() {
            let r = CLI.sftDist(["merge"] + pair + ["--out", out + "/m\(i)"])
            XCTAssertEqual(r.status, 0, r.all)
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/m\(i)/tokenizer.json"), "\(pair): \(MergeOutputSafetyTests.listing(out + "/m\(i)"))")
        }
    }
}
