import Foundation
import XCTest

/// `max_length` defaults to 64 tokens, the built-in tasks' size; real data cut there trains on
/// a fraction of each answer, and the load line's "(truncated 30 (right) to 64 tokens)" was all
/// that said so. The log now adds a note: how many, the longest, and the flag that keeps them.
final class LengthNoteTests: XCTestCase {
    func testLongDataGetsANoteWithTheFlagThatKeepsItWhole() throws {
        let dir = CLI.tempDir("length-note")
        // "Summarise: " + 8 words (51 bytes) and a 141-byte answer + end-of-text: 193 byte tokens.
        let row = #"{"prompt": "Summarise: word word word word word word word word ", "completion": " "# + String(repeating: "answer ", count: 20) + #""}"#
        try String(repeating: row + "\n", count: 30).write(toFile: dir + "/long.jsonl", atomically: true, encoding: .utf8)
        let base = ["train", "--data", "long.jsonl", "--steps", "1", "--batch-size", "2", "--eval-examples", "0", "--warmup-steps", "0"]
        let cut = CLI.sftDist(base + ["--model", "gpt2-mini", "--out", "a"], cwd: dir)
        XCTAssertEqual(cut.status, 0, cut.all)
        XCTAssertEqual(CLI.occurrences(of: "note: 30 of 30 examples in long.jsonl are longer than max_length 64 (the default, sized for the built-in tasks) and were cut (right); the longest has 193 tokens: --max-length 193 keeps them whole", in: cut.stdout), 1, cut.all)
        let whole = CLI.sftDist(base + ["--model", "gpt2-mini", "--max-length", "193", "--out", "b"], cwd: dir)
        XCTAssertEqual(whole.status, 0, whole.all)
        XCTAssertFalse(whole.all.contains("note: 30 of 30"), whole.all)
        // The model's context (tiny: 64 tokens) is the limit: no flag to suggest.
        let tiny = CLI.sftDist(base + ["--model", "tiny", "--max-length", "128", "--out", "c"], cwd: dir)
        XCTAssertEqual(tiny.status, 0, tiny.all)
        XCTAssertTrue(tiny.stdout.contains("note: 30 of 30 examples in long.jsonl are longer than the model's context of 64 tokens and were cut (right); the longest has 193 tokens\n"), tiny.all)
        // A max_length above the context is capped there; recipe.yaml keeps 128, the log says so.
        XCTAssertEqual(CLI.occurrences(of: "note: max_length 128 is above the model's context of 64 tokens: sequences are cut at 64\n", in: tiny.stdout), 1, tiny.all)
        XCTAssertFalse(cut.all.contains("above the model's context"), cut.all)
        // When nothing fits, the error says the 64 it names is the context, not the flag's 128.
        let none = CLI.sftDist(base + ["--model", "tiny", "--max-length", "128", "--truncation", "drop", "--out", "f"], cwd: dir)
        XCTAssertEqual(none.status, 1, none.all)
        XCTAssertTrue(none.stderr.contains("long.jsonl: no examples left (loaded 0 of 30 records from long.jsonl (dropped 30 longer than 64 tokens)); the longest has 193 tokens; --truncation left keeps them, cut from their start (the prompt first); 64 tokens is the model's context, which caps --max-length 128\n"), none.all)
        // Prompts that fill max_length leave right truncation nothing to train on: the error
        // names both ways out (it named neither, and the note that names --max-length never came).
        let longPrompt = #"{"prompt": "\#(String(repeating: "p", count: 150))", "completion": " \#(String(repeating: "a", count: 40))"}"#
        try String(repeating: longPrompt + "\n", count: 3).write(toFile: dir + "/prompts.jsonl", atomically: true, encoding: .utf8)
        let right = CLI.sftDist(base.map { $0 == "long.jsonl" ? "prompts.jsonl" : $0 } + ["--model", "gpt2-mini", "--out", "g"], cwd: dir)
        XCTAssertEqual(right.status, 1, right.all)
        XCTAssertTrue(right.stderr.contains("prompts.jsonl: no examples left (loaded 0 of 3 records from prompts.jsonl (truncated 3 (right) to 64 tokens; dropped 3 with no loss tokens left)); the longest has 192 tokens; --truncation left keeps the completions (it cuts the prompts' start); --max-length 192 keeps them whole\n"), right.all)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/g"), "a refused run writes nothing")
        let left = CLI.sftDist(base.map { $0 == "long.jsonl" ? "prompts.jsonl" : $0 } + ["--model", "gpt2-mini", "--truncation", "left", "--out", "h"], cwd: dir)
        XCTAssertEqual(left.status, 0, left.all)
        // A --heldout file gets its own note; the built-in training rows fit and get none.
        let held = CLI.sftDist(["train", "--model", "gpt2-mini", "--heldout", "long.jsonl", "--steps", "1", "--batch-size", "2", "--eval-examples", "0",
                                "--warmup-steps", "0", "--out", "d"], cwd: dir)
        XCTAssertEqual(held.status, 0, held.all)
        // (Not counting the OpenBLAS kernel's note, which a CPU newer than OpenBLAS gets: BLASKernel.)
        XCTAssertEqual(held.stdout.split(separator: "\n").filter { $0.hasPrefix("note: ") && !$0.contains("OPENBLAS_CORETYPE") }.count, 1, held.all)
        XCTAssertTrue(held.stdout.contains("note: 30 of 30 examples in long.jsonl are longer than max_length 64 (the default, sized for the built-in tasks) and were cut (right); the longest has 193 tokens: --max-length 193 keeps them whole"), held.all)
        // eval, score and select (on the model just trained) have no --truncation: they name --max-length only (the shared
        // message sent them to --truncation left, which they refuse).
        for command in [["eval"], ["score"], ["select", "--method", "loss", "--keep", "0.5", "--out", "s.jsonl"]] {
            let r = CLI.sftDist(command + ["--model", "d/model", "--data", "prompts.jsonl", "--max-length", "64"], cwd: dir)
            XCTAssertEqual(r.status, 1, r.all)
            XCTAssertTrue(r.stderr.contains("; dropped 3 with no loss tokens left)); the longest has 192 tokens; --max-length 192 keeps them whole\n"), "\(command[0]): \(r.all)")
            XCTAssertFalse(r.stderr.contains("--truncation"), r.all)
        }
        // So does an --eval-data set (its rows were cut or left out without a word).
        let named = CLI.sftDist(["train", "--model", "gpt2-mini", "--eval-data", "long=long.jsonl", "--steps", "1", "--batch-size", "2",
                                 "--eval-examples", "0", "--warmup-steps", "0", "--out", "e"], cwd: dir)
        XCTAssertEqual(named.status, 0, named.all)
        XCTAssertEqual(CLI.occurrences(of: "note: --eval-data long: 30 of 30 examples in long.jsonl are longer than max_length 64 (the default, sized for the built-in tasks) and were cut (right); the longest has 193 tokens: --max-length 193 keeps them whole", in: named.stdout), 1, named.all)
    }
}
