import Foundation
import XCTest

/// `{"text"}` rows end to end. With the byte tokenizer a text row is, id for id and mask for
/// mask, a `{prompt, completion}` row whose prompt is its first character (the first token
/// is never predicted), so the two runs' figures are the same numbers.
final class TextRowsCLITests: XCTestCase {
    func testTextRowsTrainAsTheSameTextAsACompletion() throws {
        let dir = CLI.tempDir("text-rows")
        let texts = (0..<24).map { i in "add \(i % 9) \(i % 7) = \(i % 9 + i % 7)" }
        CLI.writeJSONL(dir + "/text.jsonl", texts.map { ["text": $0] })
        CLI.writeJSONL(dir + "/split.jsonl", texts.map { ["prompt": String($0.prefix(1)), "completion": String($0.dropFirst())] })
        let args = ["train", "--model", "tiny", "--steps", "3", "--batch-size", "6", "--micro-batch-size", "3",
                    "--eval-every", "0", "--eval-examples", "4", "--heldout-fraction", "0.25", "--quiet"]
        let text = CLI.sftDist(args + ["--data", dir + "/text.jsonl", "--out", dir + "/a"])
        XCTAssertEqual(text.status, 0, text.all)
        let split = CLI.sftDist(args + ["--data", dir + "/split.jsonl", "--out", dir + "/b"])
        XCTAssertEqual(split.status, 0, split.all)
        let a = CLI.trainingRows(dir + "/a"), b = CLI.trainingRows(dir + "/b")
        XCTAssertEqual(a.count, 3)
        for (x, y) in zip(a, b) {
            for key in ["loss", "grad_norm", "mean_token_accuracy"] { XCTAssertEqual(x[key], y[key], key) }
        }
        let evalRows = { (dir: String) throws -> [[String: Any]] in
            try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
                .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }.filter { $0["eval_loss"] != nil }
        }
        let ea = try evalRows(dir + "/a"), eb = try evalRows(dir + "/b")
        XCTAssertEqual(ea.count, 2)
        XCTAssertEqual(ea.map { $0["eval_loss"] as? Double }, eb.map { $0["eval_loss"] as? Double })
        // Text rows have no answer: nothing is generated, so no exact match is reported.
        XCTAssertTrue(ea.allSatisfy { $0["eval_accuracy"] == nil }, "\(ea)")

        // eval and score read them too: the loss of the trained model on the text rows.
        let e = CLI.sftDist(["eval", "--model", dir + "/a/model", "--data", dir + "/text.jsonl", "--json"])
        XCTAssertEqual(e.status, 0, e.all)
        XCTAssertTrue(e.stderr.contains(#"note: 24 {"text"} rows (first: \#(dir)/text.jsonl:1): scored for loss, not generated"#), e.stderr)
        let f = CLI.sftDist(["eval", "--model", dir + "/a/model", "--data", dir + "/split.jsonl", "--json", "--examples", "0"])
        let j = try [e, f].map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.stdout.utf8)) as? [String: Any], $0.all) }
        XCTAssertEqual(j[0]["eval_loss"] as? Double ?? .nan, j[1]["eval_loss"] as? Double ?? 0, accuracy: 1e-6)
    }

    /// --dataset-text-field (TRL's dataset_text_field): the same run from another field; refused
    /// where the data has no plain-text row.
    func testAnotherTextFieldTrainsTheSame() {
        let dir = CLI.tempDir("text-field")
        let texts = (0..<12).map { i in "add \(i % 9) \(i % 7) = \(i % 9 + i % 7)" }
        CLI.writeJSONL(dir + "/text.jsonl", texts.map { ["text": $0] })
        CLI.writeJSONL(dir + "/content.jsonl", texts.map { ["content": $0, "id": "x"] })
        let args = ["train", "--model", "tiny", "--steps", "2", "--batch-size", "4", "--eval-every", "0", "--eval-examples", "0",
                    "--heldout-fraction", "0.25", "--quiet"]
        XCTAssertEqual(CLI.sftDist(args + ["--data", dir + "/text.jsonl", "--out", dir + "/a"]).status, 0)
        let b = CLI.sftDist(args + ["--data", dir + "/content.jsonl", "--dataset-text-field", "content", "--out", dir + "/b"])
        XCTAssertEqual(b.status, 0, b.all)
        XCTAssertEqual(CLI.losses(dir + "/a").count, 2)
        XCTAssertEqual(CLI.losses(dir + "/a"), CLI.losses(dir + "/b"))
        let none = CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--dataset-text-field", "content", "--out", dir + "/c"])
        XCTAssertEqual(none.status, 1, none.all)
        XCTAssertTrue(none.stderr.contains("--dataset-text-field content names the field of plain-text rows, and the data has none: drop it"), none.stderr)
    }

    func testAMethodThatAnswersPromptsNamesTheTextRow() {
        let dir = CLI.tempDir("text-rows-refused")
        CLI.writeJSONL(dir + "/mixed.jsonl", (0..<12).map { i in i == 4 ? ["text": "add 1 2 = 3"] : ["prompt": "add \(i) 1 =", "completion": " \(i + 1)"] })
        let r = CLI.sftDist(["train", "--model", "tiny", "--data", dir + "/mixed.jsonl", "--heldout-fraction", "0", "--objective", "grpo",
                             "--reward", "task", "--steps", "1", "--batch-size", "4", "--rollouts", "2", "--out", dir + "/out"])
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertTrue(r.stderr.contains(#"mixed.jsonl:5: a {"text"} row has no prompt, and objective grpo samples answers to --data's prompts (no --prompts)"#), r.stderr)
        XCTAssertEqual(CLI.occurrences(of: "error", in: r.stderr), 1, r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out"))
        // With --prompts the rollouts answer those; --data's text rows are only held out and trained on.
        CLI.writeJSONL(dir + "/prompts.jsonl", (0..<4).map { ["prompt": "add \($0) 2 ="] })
        let withPrompts = CLI.sftDist(["train", "--model", "tiny", "--data", dir + "/mixed.jsonl", "--prompts", dir + "/prompts.jsonl",
                                       "--objective", "grpo", "--reward", "task", "--steps", "1", "--batch-size", "4", "--rollouts", "2",
                                       "--eval-examples", "0", "--eval-every", "0", "--out", dir + "/out2", "--quiet"])
        XCTAssertEqual(withPrompts.status, 0, withPrompts.all)
    }
}
