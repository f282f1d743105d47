import Foundation
import XCTest

/// Settings of the selection and self-training methods that trapped, allocated without bound or
/// did nothing, each now one line with exit 1 (found by a review, 2026-12-08), and the notes a
/// newcomer from transformers and TRL meets: model dropout, rows repeated within a step.
final class SelectionArgumentCLITests: XCTestCase {
    static let data: String = {
        let dir = CLI.tempDir("selection-args")
        let r = CLI.sftDist(["make-data", "--out", dir + "/d.jsonl", "--count", "48", "--seed", "3"])
        precondition(r.status == 0, r.all)
        return dir + "/d.jsonl"
    }()

    func refused(_ args: [String], _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        let r = CLI.mpirun(2, args, seconds: 120)
        XCTAssertEqual(r.status, 1, r.all, file: file, line: line)
        XCTAssertEqual(CLI.occurrences(of: message, in: r.all), 1, r.all, file: file, line: line)
    }

    func testRefusedInOneLine() throws {
        let dir = CLI.tempDir("selection-args-out")
        let train = ["train", "--model", "tiny", "--data", Self.data, "--steps", "2", "--batch-size", "6", "--micro-batch-size", "2",
                     "--eval-every", "0", "--eval-examples", "0", "--out", dir + "/o"]
        // Q-Tuning's pruned rows took no fixed labels, and token-clean trapped at step 1 (SIGILL).
        for objective in ["token-clean", "forgetting"] {
            refused(train + ["--selection", "q-tuning", "--selection-pool", "3", "--objective", objective, "--ref-model", GRPOCLITests.warm],
                    "objective \(objective) with scores=fixed labels each training row's tokens before the first step; --selection q-tuning prunes tokens of some rows (token_budget 0.7 < 1)")
        }
        // A terabyte queue was allocated, and aborted, under --dry-run too.
        refused(train + ["--selection", "uds", "--selection-arg", "sketch_time=4096", "--selection-arg", "sketch_vocab=65536", "--dry-run"],
                "selection uds: its queue of queue × sketch_time × sketch_vocab floats (1024 × 4096 × 65536) and its sketch matrices need at least 1.0 TiB per rank")
        // ssr and s3ft add no rows for ratio to share out: it changed nothing.
        for method in ["ssr", "s3ft"] {
            refused(train + ["--self-train", method, "--self-train-scorer", "task", "--self-train-arg", "ratio=0.2"],
                    "self_train_args: ratio does nothing with --self-train \(method)")
        }
        let select = ["select", "--data", Self.data, "--out", dir + "/kept.jsonl", "--model", GRPOCLITests.warm]
        // Negative values said "Missing value for '--keep <keep>'".
        refused(select + ["--method", "loss", "--keep", "-0.2"], "--keep must be in (0, 1] (got -0.2)")
        refused(select + ["--method", "loss", "--keep", "0.5", "--pool", "-3"], "--pool must be an integer in 1…100000000 (got -3)")
        // Token pruning acts on training steps; select keeps whole rows.
        for arg in ["token_budget=0.5", "lambda=0.1"] {
            refused(select + ["--method", "q-tuning", "--keep", "0.5", "--method-arg", arg],
                    "--method-arg \(arg.split(separator: "=")[0]): q-tuning's token pruning (token_budget, lambda) masks tokens of the rows a training step keeps")
        }
        // The model as its own reference: every score 0, and the file's first rows written as selected.
        refused(select + ["--method", "learnability", "--keep", "0.5", "--ref-model", GRPOCLITests.warm],
                "--method learnability: every row scores 0")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/kept.jsonl"), "a refused select wrote its output")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/o"), "a refused run made its output directory")
    }

    /// The model's config.json dropout, which sft-dist does not apply, is said once and kept in
    /// the saved config; a batch larger than the data says that rows repeat within a step.
    func testNotesForANewcomer() throws {
        let dir = CLI.tempDir("newcomer-notes")
        let model = dir + "/gpt2"
        try FileManager.default.copyItem(atPath: HFModelCLITests.model("gpt2"), toPath: model)
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: model + "/config.json"))) as! [String: Any]
        for k in ["resid_pdrop", "embd_pdrop", "attn_pdrop"] { config[k] = 0.1 }
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: model + "/config.json"))
        let rows = dir + "/three.jsonl"
        try (0..<3).map { #"{"prompt": "add \#($0) 1 =", "completion": " \#($0 + 1)"}"# }.joined(separator: "\n").write(toFile: rows, atomically: true, encoding: .utf8)
        let r = CLI.mpirun(2, ["train", "--model", model, "--data", rows, "--heldout-fraction", "0", "--steps", "1", "--batch-size", "8",
                               "--micro-batch-size", "2", "--eval-every", "0", "--eval-examples", "0", "--out", dir + "/o"], seconds: 120)
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertEqual(CLI.occurrences(of: "config.json sets attn_pdrop 0.1, embd_pdrop 0.1, resid_pdrop 0.1, and sft-dist trains without dropout", in: r.all), 1, r.all)
        XCTAssertEqual(CLI.occurrences(of: "note: batch_size 8 is more than the 3 training rows: each step takes rows more than once", in: r.all), 1, r.all)
        let saved = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/o/model/config.json"))) as! [String: Any]
        XCTAssertEqual(saved["resid_pdrop"] as? Double, 0.1)
        // By epochs, as TRL: no note.
        let e = CLI.sftDist(["train", "--model", model, "--data", rows, "--heldout-fraction", "0", "--num-train-epochs", "1", "--batch-size", "8",
                             "--eval-every", "0", "--eval-examples", "0", "--out", dir + "/e"])
        XCTAssertEqual(e.status, 0, e.all)
        XCTAssertFalse(e.all.contains("is more than the 3 training rows"), e.all)
    }
}
