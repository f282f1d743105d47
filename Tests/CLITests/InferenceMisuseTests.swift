import Foundation
import XCTest

/// The inference subcommands' misuse found by a hostile review (2026-12-04): each case is one
/// line naming the flag or row, and writes nothing; none of them starts a training run.
final class InferenceMisuseTests: XCTestCase {
    func testEmptyOutputPathsPresetsAndTemplatesThatDoNothing() throws {
        let dir = CLI.tempDir("inference-misuse")
        XCTAssertEqual(CLI.sftDist(["make-data", "--out", dir + "/d.jsonl", "--count", "10"]).status, 0)
        // An empty --scores was ": cannot write" (no flag named) after --out had been written.
        let select = CLI.sftDist(["select", "--model", "tiny", "--data", dir + "/d.jsonl", "--method", "loss", "--keep", "0.5",
                                  "--out", dir + "/kept.jsonl", "--scores", ""])
        // An empty path is a malformed flag: 1, as `train --out ""` (these exited 6).
        XCTAssertEqual(select.status, 1, select.all)
        XCTAssertEqual(CLI.occurrences(of: "sft-dist: error: --scores: an empty path; give a file", in: select.stderr), 1, select.all)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/kept.jsonl"), "--out was written")
        let score = CLI.sftDist(["score", "--model", "tiny", "--data", dir + "/d.jsonl", "--out", ""])
        XCTAssertEqual(score.status, 1, score.all)
        for args in [["make-data", "--count", "2"], ["export", "--model", "tiny"], ["merge", "--weights", "1", "x"], ["train", "--model", "tiny"]] {
            let r = CLI.sftDist(args + ["--out", ""])
            XCTAssertEqual(r.status, 1, "\(args): \(r.all)")
            XCTAssertEqual(CLI.occurrences(of: "sft-dist: error: --out", in: r.stderr), 1, r.all)
        }
        XCTAssertTrue(score.stderr.contains("--out: an empty path; give a file"), score.all)

        // export reads saved models only: the message listed the preset it refused as accepted.
        let export = CLI.sftDist(["export", "--model", "tiny", "--out", dir + "/x"], cwd: dir)
        XCTAssertEqual(export.status, 1, export.all)
        XCTAssertTrue(export.stderr.contains("tiny: a preset, whose weights are random; export reads saved models"), export.all)
        // tokenize --model NAME where ./NAME is a model directory too: refused as every --model is
        // (it used ./tiny's tokenizer silently).
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--eval-examples", "0", "--quiet", "--out", dir + "/run"]).status, 0)
        try FileManager.default.copyItem(atPath: dir + "/run/model", toPath: dir + "/tiny")
        let tokenize = CLI.sftDist(["tokenize", "--model", "tiny", "hi"], cwd: dir)
        XCTAssertEqual(tokenize.status, 1, tokenize.all)
        XCTAssertTrue(tokenize.stderr.contains("--model tiny: names both the preset tiny and the directory ./tiny"), tokenize.all)
        XCTAssertEqual(CLI.sftDist(["tokenize", "--model", "./tiny", "hi"], cwd: dir).status, 0)
        // A preset run saves only sft_dist_tokenizer.json; given as --tokenizer it read as a
        // corrupt tokenizer.json ("field "model" is missing").
        let record = CLI.sftDist(["tokenize", "--tokenizer", "tiny/sft_dist_tokenizer.json", "hi"], cwd: dir)
        XCTAssertEqual(record.status, 1, record.all)
        XCTAssertEqual(record.stderr, "sft-dist: error: --tokenizer tiny/sft_dist_tokenizer.json is sft-dist's byte-tokenizer record, not a Hugging Face tokenizer.json: the byte tokenizer is tokenize's default (drop --tokenizer), or give --model with the model's directory\n", record.all)
        try FileManager.default.copyItem(atPath: dir + "/tiny/sft_dist_tokenizer.json", toPath: dir + "/copy.json")
        let copy = CLI.sftDist(["tokenize", "--tokenizer", "copy.json", "hi"], cwd: dir)
        XCTAssertTrue(copy.stderr.contains("--tokenizer copy.json is sft-dist's byte-tokenizer record"), copy.all)

        // --chat-template lays out {messages} rows; with prompt/completion rows it did nothing.
        let needle = "--chat-template llama3 lays out {messages} rows, and \(dir)/d.jsonl has none"
        for args in [["score", "--model", "tiny", "--data", dir + "/d.jsonl", "--out", dir + "/s.jsonl"],
                     ["eval", "--model", "tiny", "--data", dir + "/d.jsonl", "--examples", "0"],
                     ["select", "--model", "tiny", "--data", dir + "/d.jsonl", "--method", "loss", "--keep", "0.5", "--out", dir + "/k.jsonl"],
                     ["generate", "--model", "tiny", "--prompts", dir + "/d.jsonl"]] {
            let r = CLI.sftDist(args + ["--chat-template", "llama3"])
            XCTAssertEqual(r.status, 1, "\(args[0]): \(r.all)")
            XCTAssertEqual(CLI.occurrences(of: needle, in: r.stderr), 1, "\(args[0]): \(r.all)")
            XCTAssertEqual(r.stdout, "", "\(args[0]) printed before refusing")
        }
    }

    /// A row with an empty prompt has nothing to continue: eval generated an empty answer for
    /// it, held with confidence 1, and counted it (accuracy and calibration skewed). It is
    /// scored for loss and left out of generation, with a note.
    func testEvalLeavesRowsWithAnEmptyPromptOutOfGeneration() throws {
        let dir = CLI.tempDir("eval-empty-prompt")
        try "{\"prompt\": \"\", \"completion\": \" b\"}\n{\"prompt\": \"add 1 2 =\", \"completion\": \" 3\"}\n"
            .write(toFile: dir + "/d.jsonl", atomically: true, encoding: .utf8)
        let r = CLI.mpirun(2, ["eval", "--model", "tiny", "--data", dir + "/d.jsonl", "--json"])
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertEqual(CLI.occurrences(of: "sft-dist: note: 1 row has an empty prompt (first: \(dir)/d.jsonl:1): scored for loss, not generated", in: r.stderr), 1, r.all)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        XCTAssertEqual(json["examples"] as? Int, 2, r.stdout)
        XCTAssertEqual(json["eval_generated"] as? Int, 1, r.stdout)
    }

    /// "" under a tokenizer that adds a BOS (Llama 3) is the BOS alone: it was generated from by
    /// eval and generate, where the same file on GPT-2 was left out or refused (a review).
    func testAPromptOfOnlyTheBOSIsEmptyToo() throws {
        let dir = CLI.tempDir("eval-empty-bos")
        try "{\"prompt\": \"\", \"completion\": \" b\"}\n{\"prompt\": \"a\", \"completion\": \" b\"}\n"
            .write(toFile: dir + "/d.jsonl", atomically: true, encoding: .utf8)
        let model = ChatTemplateSaveTests.models + "/llama"
        let r = CLI.sftDist(["eval", "--model", model, "--data", dir + "/d.jsonl", "--json"])
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertEqual(CLI.occurrences(of: "1 row has an empty prompt (first: \(dir)/d.jsonl:1)", in: r.stderr), 1, r.all)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        XCTAssertEqual(json["eval_generated"] as? Int, 1, r.stdout)
        try "{\"prompt\": \"\"}\n".write(toFile: dir + "/p.jsonl", atomically: true, encoding: .utf8)
        for args in [["--prompts", dir + "/p.jsonl"], ["--prompt", "<|begin_of_text|>"]] {
            let g = CLI.sftDist(["generate", "--model", model, "--max-new-tokens", "3"] + args)
            XCTAssertEqual(g.status, 1, g.all)
            XCTAssertTrue(g.stderr.contains("the prompt is empty"), g.all)
        }
    }

    /// tokenize --model reads the model's config too: a tokenizer larger than its vocab_size
    /// printed ids no embedding row has (train refuses such a model; a fuzzing review).
    func testTokenizeRefusesATokenizerLargerThanTheModelsVocabulary() throws {
        let dir = CLI.tempDir("tokenize-vocab")
        try FileManager.default.copyItem(atPath: ChatTemplateSaveTests.models + "/llama", toPath: dir + "/m")
        XCTAssertEqual(CLI.sftDist(["tokenize", "--model", dir + "/m", "hello"]).status, 0)
        let path = dir + "/m/config.json"
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        config["vocab_size"] = 300
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: path))
        let r = CLI.sftDist(["tokenize", "--model", dir + "/m", "hello"])
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertTrue(r.stderr.contains("tokens but the model's vocab_size is 300"), r.all)
        XCTAssertEqual(r.stdout, "", r.all)
    }
}
