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
}
