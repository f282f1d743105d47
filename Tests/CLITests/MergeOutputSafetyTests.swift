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

    func testMergeNamesEachBadInputAndRefusesDegenerateWeights() {
        let out = CLI.tempDir("merge-inputs")
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--out", out + "/a"] + Self.quiet).status, 0)
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--seed", "9", "--out", out + "/b"] + Self.quiet).status, 0)
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--lora-rank", "4", "--out", out + "/lora"] + Self.quiet).status, 0)
        let a = out + "/a/model", b = out + "/b/model"
        for (args, needle) in [([a, out + "/nonexist"], "nonexist: no such model directory"),
                               ([a, out + "/lora/model"], "holds a LoRA adapter"),
                               ([a, b, "--weights", "0,0"], "every weight is 0"),
                               ([a, b, "--weights", "1e300,1e300"], "beyond float32")] {
            let r = CLI.sftDist(["merge"] + args + ["--out", out + "/m"])
            XCTAssertEqual(r.status, 1, "\(args): \(r.all)")
            XCTAssertTrue(r.stderr.contains(needle), "\(args): \(r.all)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/m"), "\(args) wrote a model")
        }
        // `--out DIR/` is DIR, written fresh and then replaced (its temporary copy sat inside it).
        for _ in 0..<2 {
            let slash = CLI.sftDist(["merge", a, b, "--out", out + "/slash/"])
            XCTAssertEqual(slash.status, 0, slash.all)
        }
        XCTAssertEqual(Self.listing(out + "/slash").filter { $0.hasPrefix(".tmp") }, [])
        XCTAssertEqual(CLI.sftDist(["eval", "--model", out + "/slash", "--data", out + "/a/data/heldout.jsonl", "--examples", "2"]).status, 0)
        // The same byte tokenizer with Hugging Face files added by export: the same tokenizer.
        XCTAssertEqual(CLI.sftDist(["export", "--model", a, "--out", out + "/ax"]).status, 0)
        let r = CLI.sftDist(["merge", a, out + "/ax", "--out", out + "/m"])
        XCTAssertEqual(r.status, 0, r.all)
    }
}
