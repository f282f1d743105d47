import Foundation
import XCTest

/// The prompts a rollout run samples from: lines `--skip-bad-lines` skips in `--prompts`, and
/// prompts longer than the context minus max_completion_length (below max_length, so the data's
/// own length note never sees them), are named in one note line.
final class RolloutPromptNoteCLITests: XCTestCase {
    func testLongPromptsAndSkippedLinesAreNoted() throws {
        let dir = CLI.tempDir("prompt-note")
        let long = "add " + String(repeating: "1", count: 70) + " 2 ="
        try [#"{"prompt": "add 1 2 =", "completion": " 3"}"#, "not json", #"{"prompt": "\#(long)", "completion": " 3"}"#]
            .joined(separator: "\n").write(toFile: dir + "/p.jsonl", atomically: true, encoding: .utf8)
        let base = GRPOCLITests.grpo(["--prompts", dir + "/p.jsonl", "--steps", "1", "--steps-per-generation", "1", "--truncation", "drop"])
            .filter { $0 != "--quiet" }
        let refused = CLI.sftDist(base + ["--out", dir + "/a"])
        XCTAssertEqual(refused.status, 1, refused.all)
        XCTAssertTrue(refused.stderr.contains("p.jsonl:2"), refused.stderr)
        let r = CLI.sftDist(base + ["--skip-bad-lines", "--out", dir + "/b"])
        XCTAssertEqual(r.status, 0, r.all)
        let notes = r.all.split(separator: "\n").filter { $0.contains("prompts in \(dir)/p.jsonl") }
        XCTAssertEqual(notes.count, 1, r.all)
        XCTAssertTrue(notes.first?.contains("1 of 2 prompts in \(dir)/p.jsonl are longer than 58 tokens (the context minus max_completion_length) and were left out") ?? false, "\(notes)")
        XCTAssertTrue(notes.first?.contains("skipped 1 bad line of \(dir)/p.jsonl (first: \(dir)/p.jsonl:2") ?? false, "\(notes)")
    }

    /// A templated prompt longer than its room, with --truncation not given, is refused naming
    /// --truncation left: the default's cut on the right took off its end, the generation prompt
    /// (every rollout came out empty). Given — as a flag or in a recipe file — it is taken: left
    /// keeps the generation prompt, as TRL's GRPOTrainer cuts (truncation_side="left").
    func testLongTemplatedPromptsNeedTruncationGiven() throws {
        let dir = CLI.tempDir("prompt-left")
        CLI.writeJSONL(dir + "/p.jsonl", (0..<2).map { i in ["messages": [["role": "user", "content": "copy \(i) " + String(repeating: "x", count: 90)]]] })
        func prompts(_ flags: [String], _ name: String) throws -> (note: String, prompts: [String]) {
            let log = dir + "/\(name).log"
            let r = CLI.sftDist(["train", "--model", "tiny", "--objective", "grpo", "--prompts", dir + "/p.jsonl", "--reward", "command",
                                 "--reward-arg", "command.cmd=while read -r l; do printf '%s\\n' \"$l\" >> \(log); echo 0; done",
                                 "--rollouts", "2", "--batch-size", "4", "--steps", "1", "--max-completion-length", "4",
                                 "--eval-examples", "0", "--eval-every", "0", "--out", dir + "/" + name] + flags)
            XCTAssertEqual(r.status, 0, r.all)
            let note = r.stdout.split(separator: "\n").first { $0.contains("prompts in \(dir)/p.jsonl") }.map(String.init) ?? ""
            let rows = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map {
                try XCTUnwrap((try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["prompt"] as? String)
            }
            XCTAssertEqual(rows.count, 4)
            return (note, rows)
        }
        let refused = CLI.sftDist(["train", "--model", "tiny", "--objective", "grpo", "--prompts", dir + "/p.jsonl", "--reward", "format",
                                   "--rollouts", "2", "--batch-size", "4", "--steps", "1", "--max-completion-length", "4",
                                   "--eval-examples", "0", "--eval-every", "0", "--out", dir + "/refused"])
        XCTAssertEqual(refused.status, 1, refused.all)
        XCTAssertTrue(refused.stderr.contains("p.jsonl:1: 2 of 2 prompts in \(dir)/p.jsonl are longer than 60 tokens (the context minus max_completion_length; this one "), refused.all)
        XCTAssertTrue(refused.stderr.contains("), and --truncation is not given: its default, right, would cut their ends, where a chat template puts the generation prompt; give --truncation left"), refused.all)
        let left = try prompts(["--truncation", "left"], "left")
        XCTAssertTrue(left.note.contains("2 of 2 prompts in \(dir)/p.jsonl are longer than 60 tokens (the context minus max_completion_length) and were cut (left)"), left.note)
        for p in left.prompts {
            XCTAssertTrue(p.hasSuffix("xxx<|im_end|>\n<|im_start|>assistant\n"), p)
            XCTAssertFalse(p.contains("<|im_start|>user"), p)
        }
        let right = try prompts(["--truncation", "right"], "right")
        XCTAssertTrue(right.note.contains("were cut (right)"), right.note)
        for p in right.prompts { XCTAssertTrue(p.hasPrefix("<|im_start|>user\ncopy ") && !p.contains("assistant"), p) }
        // Given in a recipe file at its default value, it is given.
        try "truncation: right\n".write(toFile: dir + "/r.yaml", atomically: true, encoding: .utf8)
        let fromFile = try prompts(["--config", dir + "/r.yaml"], "file")
        XCTAssertTrue(fromFile.note.contains("were cut (right)"), fromFile.note)
    }

    /// online-dpo reads --data's rows with their completions; TRL's OnlineDPO datasets are prompts
    /// alone, which were refused with only "missing field "completion"": the way on is named.
    func testPromptOnlyRowsUnderOnlineDPONameTheWayOn() throws {
        let dir = CLI.tempDir("online-dpo-prompts")
        CLI.writeJSONL(dir + "/p.jsonl", (0..<8).map { ["prompt": "add \($0) 1 ="] })
        let args = ["train", "--model", "tiny", "--objective", "online-dpo", "--reward", "task", "--batch-size", "4", "--steps", "1",
                    "--eval-every", "0", "--eval-examples", "0", "--heldout-fraction", "0", "--quiet"]
        let refused = CLI.sftDist(args + ["--data", dir + "/p.jsonl", "--out", dir + "/a"])
        XCTAssertEqual(refused.status, 1, refused.all)
        XCTAssertTrue(refused.stderr.contains("p.jsonl:1: missing field \"completion\""), refused.all)
        XCTAssertTrue(refused.stderr.contains("(objective online-dpo reads --data's rows with their completions; give prompts alone as --prompts FILE, beside --data)"), refused.all)
        XCTAssertEqual(CLI.sftDist(["make-data", "--out", dir + "/d.jsonl", "--count", "40"]).status, 0)
        let way = CLI.sftDist(args + ["--data", dir + "/d.jsonl", "--prompts", dir + "/p.jsonl", "--out", dir + "/b"])
        XCTAssertEqual(way.status, 0, way.all)
    }
}
