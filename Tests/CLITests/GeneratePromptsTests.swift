import Foundation
import XCTest

/// `generate --prompts` needs prompts, not training rows: a line with only "prompt", or
/// "messages" ending in a user turn, is a prompt; a final assistant turn, if present, is
/// dropped (the model writes it).
final class GeneratePromptsTests: XCTestCase {
    func testPromptOnlyRowsAndMessagesWithoutAnAnswerAreAccepted() throws {
        let dir = CLI.tempDir("gen-prompts")
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--batch-size", "2", "--eval-every", "0",
                                    "--quiet", "--out", dir], seconds: 60).status, 0)
        let rows = [#"{"prompt": "add 1 2 ="}"#,
                    #"{"messages": [{"role": "user", "content": "copy ab"}]}"#,
                    #"{"prompt": "copy xy =", "completion": " xy"}"#,
                    #"{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]}"#]
        try rows.joined(separator: "\n").write(toFile: dir + "/prompts.jsonl", atomically: true, encoding: .utf8)
        let r = CLI.sftDist(["generate", "--model", dir + "/model", "--prompts", dir + "/prompts.jsonl", "--max-new-tokens", "3", "--json"],
                            seconds: 60)
        XCTAssertEqual(r.status, 0, r.all)
        let lines = r.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 4, r.stdout)
        guard lines.count == 4 else { return }
        let prompts = lines.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }.map { $0["prompt"] as? String }
        XCTAssertEqual(prompts.first, "add 1 2 =")
        XCTAssertTrue(prompts[1]?.contains("copy ab") == true, "\(prompts)")

        // Still refused: a line that has no prompt at all names its line.
        try (rows[0] + "\n" + #"{"completion": "x"}"#).write(toFile: dir + "/bad.jsonl", atomically: true, encoding: .utf8)
        let bad = CLI.sftDist(["generate", "--model", dir + "/model", "--prompts", dir + "/bad.jsonl"], seconds: 60)
        XCTAssertEqual(bad.status, 1, bad.all)
        XCTAssertTrue(bad.stderr.contains("bad.jsonl:2"), bad.stderr)
        // A conversation that is only its answer has nothing to prompt with: the template's
        // default system turn alone was the prompt (transformers refuses the empty conversation).
        try (rows[0] + "\n" + #"{"messages": [{"role": "assistant", "content": "hi"}]}"#).write(toFile: dir + "/answer.jsonl", atomically: true, encoding: .utf8)
        let answer = CLI.sftDist(["generate", "--model", dir + "/model", "--prompts", dir + "/answer.jsonl"], seconds: 60)
        XCTAssertEqual(answer.status, 1, answer.all)
        XCTAssertTrue(answer.stderr.contains("answer.jsonl:2: the conversation is one assistant turn, the reference; a prompt needs a turn before it"), answer.stderr)
        // Self-training's --unlabelled prompts say the same (they said it in words of their own).
        let unlabelled = CLI.sftDist(["train", "--model", "tiny", "--self-train", "semievol", "--unlabelled", dir + "/answer.jsonl",
                                      "--steps", "1", "--out", dir + "/st"], seconds: 60)
        XCTAssertEqual(unlabelled.status, 1, unlabelled.all)
        XCTAssertTrue(unlabelled.stderr.contains("answer.jsonl:2: the conversation is one assistant turn, the reference; a prompt needs a turn before it"), unlabelled.stderr)
        // A prompt longer than the model's context names its line too.
        try (rows[0] + "\n" + rows[0] + "\n" + "{\"prompt\": \"\(String(repeating: "x", count: 500))\"}\n").write(toFile: dir + "/long.jsonl", atomically: true, encoding: .utf8)
        let long = CLI.sftDist(["generate", "--model", dir + "/model", "--prompts", dir + "/long.jsonl"], seconds: 60)
        XCTAssertEqual(long.status, 1, long.all)
        XCTAssertTrue(long.stderr.contains("long.jsonl:3: the prompt has 500 tokens; the model's context is 64"), long.stderr)
    }

    /// `--stop '\n'` as a shell passes it (a backslash and an n) stops at a newline: a tiny
    /// model trained to answer "ab", newline, "cd" stops after "ab"; an empty stop is refused.
    func testStopEscapesAreReadAsTheirCharacters() throws {
        let dir = CLI.tempDir("gen-stop")
        let row = #"{"prompt": "say:", "completion": "ab\ncd"}"#
        try Array(repeating: row, count: 64).joined(separator: "\n").write(toFile: dir + "/d.jsonl", atomically: true, encoding: .utf8)
        let t = CLI.sftDist(["train", "--model", "tiny", "--data", dir + "/d.jsonl", "--steps", "40", "--lr", "3e-2", "--batch-size", "8",
                             "--micro-batch-size", "8", "--warmup-steps", "0", "--eval-every", "0", "--eval-examples", "0", "--quiet", "--out", dir + "/run"])
        XCTAssertEqual(t.status, 0, t.all)
        func text(_ extra: [String]) throws -> String? {
            let r = CLI.sftDist(["generate", "--model", dir + "/run/model", "--prompt", "say:", "--max-new-tokens", "6", "--json"] + extra)
            XCTAssertEqual(r.status, 0, r.all)
            return try (JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["text"] as? String
        }
        XCTAssertEqual(try text([]), "ab\ncd", "the model learnt its answer")
        XCTAssertEqual(try text(["--stop", "\\n"]), "ab")
        // Streamed (one --prompt, no --json): the same text; the token that completed the stop
        // string was printed with it ("say:ab\n", then the closing newline).
        for (stop, expected) in [("\\n", "ab"), ("c", "ab\n"), ("b\\nc", "a")] {
            XCTAssertEqual(try text(["--stop", stop]), expected, stop)
            let r = CLI.sftDist(["generate", "--model", dir + "/run/model", "--prompt", "say:", "--max-new-tokens", "6", "--stop", stop])
            XCTAssertEqual(r.status, 0, r.all)
            XCTAssertEqual(r.stdout, "say:" + expected + "\n", stop)
        }
        // Refused: an empty stop, a backslash that starts no escape, an empty prompt.
        try #"{"prompt": "say:"}"# .appending("\n" + #"{"prompt": ""}"#).write(toFile: dir + "/p.jsonl", atomically: true, encoding: .utf8)
        for (args, needle) in [(["--prompt", "say:", "--stop", ""], "--stop: an empty stop string"),
                               (["--prompt", "say:", "--stop", "\\q"], #"\q is not an escape"#),
                               (["--prompt", "say:", "--stop", "x\\"], #"\ is not an escape"#),
                               (["--prompt", ""], "--prompt is empty"),
                               (["--prompts", dir + "/p.jsonl"], "p.jsonl:2: the prompt is empty")] {
            let r = CLI.sftDist(["generate", "--model", dir + "/run/model"] + args)
            XCTAssertEqual(r.status, 1, r.all)
            XCTAssertTrue(r.stderr.contains(needle), "\(needle) in: \(r.all)")
        }
    }

    /// Generation that reaches the model's context ends there (finish "length", as at
    /// --max-new-tokens); the answer was silently shorter than asked for. tiny's context is 64.
    func testGenerationStoppedByTheContextSaysSo() throws {
        let dir = CLI.tempDir("gen-context")
        try "{\"prompt\": \"a\"}\n{\"prompt\": \"b\"}\n".write(toFile: dir + "/p.jsonl", atomically: true, encoding: .utf8)
        let note = "stopped at the model's context (64 tokens, prompt included) before --max-new-tokens 500"
        let batch = CLI.mpirun(2, ["generate", "--model", "tiny", "--prompts", dir + "/p.jsonl", "--max-new-tokens", "500", "--json"])
        XCTAssertEqual(batch.status, 0, batch.all)
        XCTAssertEqual(CLI.occurrences(of: "sft-dist: note: 2 of 2 generations " + note, in: batch.stderr), 1, batch.all)
        XCTAssertEqual(CLI.occurrences(of: "\"finish\": \"length\"", in: batch.stdout), 2, batch.all)
        let one = CLI.sftDist(["generate", "--model", "tiny", "--prompt", "a", "--max-new-tokens", "500"])
        XCTAssertEqual(one.status, 0, one.all)
        XCTAssertEqual(CLI.occurrences(of: "sft-dist: note: the generation " + note, in: one.stderr), 1, one.all)
        // Within the context: no note.
        let short = CLI.sftDist(["generate", "--model", "tiny", "--prompt", "a", "--max-new-tokens", "5"])
        XCTAssertEqual(short.status, 0, short.all)
        XCTAssertFalse(short.stderr.contains("stopped at the model's context"), short.all)
    }

    /// Mistral's sliding_window (8 in the fixture, max_position_embeddings 64) caps the context
    /// sft-dist computes exactly; the length messages called it "the model's context" alone.
    func testASlidingWindowLimitIsNamed() {
        let r = CLI.sftDist(["generate", "--model", HFModelCLITests.model("mistral-sharded"), "--prompt", "The quick brown fox jumps over"])
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertTrue(r.stderr.contains("the model's context is 8 (its sliding_window, beyond which sft-dist does not compute attention as transformers does; max_position_embeddings 64)"), r.all)
        // score (as eval and select) says so before its truncation notes.
        let dir = CLI.tempDir("gen-window")
        try? #"{"prompt": "The quick brown fox", "completion": " jumps"}"#.write(toFile: dir + "/d.jsonl", atomically: true, encoding: .utf8)
        let score = CLI.sftDist(["score", "--model", HFModelCLITests.model("mistral-sharded"), "--data", dir + "/d.jsonl", "--max-length", "32"])
        XCTAssertTrue(score.stderr.contains("sequences are cut at the model's context of 8 tokens, below --max-length 32: its sliding_window"), score.all)
        // GRPO's prompt room says what set the context (it said "max_length and the model's context").
        try? #"{"prompt": "a", "completion": " b"}"#.write(toFile: dir + "/p.jsonl", atomically: true, encoding: .utf8)
        let grpo = ["train", "--model", HFModelCLITests.model("mistral-sharded"), "--data", dir + "/p.jsonl", "--objective", "grpo",
                    "--reward", "exact", "--max-completion-length", "8", "--steps", "1", "--out", dir + "/out"]
        let window = CLI.sftDist(grpo)
        XCTAssertEqual(window.status, 1, window.all)
        XCTAssertTrue(window.stderr.contains("leaves no room for a prompt in a context of 8 tokens (the model's context: its sliding_window, "), window.all)
        let maxLength = CLI.sftDist(grpo + ["--max-length", "6"])
        XCTAssertTrue(maxLength.stderr.contains("leaves no room for a prompt in a context of 6 tokens (max_length)"), maxLength.all)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out"))
        let llama = CLI.sftDist(["generate", "--model", HFModelCLITests.model("llama"), "--prompt", String(repeating: "x ", count: 200)])
        XCTAssertFalse(llama.stderr.contains("sliding_window"), llama.all)
    }
}
