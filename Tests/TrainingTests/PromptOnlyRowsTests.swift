import Foundation
import XCTest
import Models
@testable import Training

/// grpo's prompt-only rows (`JSONLReader.Rows.examplesOrPrompts`, `ChatFormat.promptOnly`) and
/// the stop token rollouts of prompt-only data end with.
final class PromptOnlyRowsTests: XCTestCase {
    let tokenizer = ByteTokenizer()

    func file(_ lines: [String]) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("prompt-only-\(UUID().uuidString).jsonl").path
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// A conversation that ends with a user turn is all prompt, as a TRL conversational prompt
    /// (a review found its earlier assistant reply taken as the reference and the last turn
    /// dropped); one that ends with an assistant turn is prompt and reference, as before.
    func testRowsThatEndBeforeAnAnswerAreTheirWholePrompt() throws {
        let turns = #"[{"role": "user", "content": "add 1 2 ="}, {"role": "assistant", "content": " 3"}, {"role": "user", "content": "mul 2 3 ="}]"#
        let path = try file([#"{"messages": \#(turns)}"#, #"{"messages": [{"role": "user", "content": "copy ab ="}]}"#,
                             #"{"messages": [{"role": "user", "content": "copy ab ="}, {"role": "assistant", "content": " ab"}]}"#,
                             #"{"prompt": "add 2 2 ="}"#, #"{"prompt": "add 2 2 =", "completion": " 4"}"#])
        let data = try Dataset(path: path, tokenizer: tokenizer, maxLength: 512, template: .chatml, rows: .examplesOrPrompts)
        XCTAssertEqual(data.examples.map(\.isPromptOnly), [true, true, false, true, false])
        XCTAssertEqual(data.report.promptOnlyRows, 3)
        XCTAssertEqual(tokenizer.decode(data.examples[0].ids),
                       "<|im_start|>user\nadd 1 2 =<|im_end|>\n<|im_start|>assistant\n 3<|im_end|>\n<|im_start|>user\nmul 2 3 =<|im_end|>\n<|im_start|>assistant\n")
        XCTAssertEqual(data.examples[0].lossMask, [UInt8](repeating: 0, count: data.examples[0].ids.count))
        XCTAssertNil(data.examples[0].answer)
        XCTAssertEqual(data.examples[2].answer, " ab")
        XCTAssertEqual(data.examples[4].answer, " 4")
        XCTAssertEqual(Array(data.examples[4].ids.prefix(data.examples[4].promptLength)), data.examples[3].ids)
        // Read as training rows (every other objective), the same conversation trains its assistant turn.
        let training = try Dataset(path: try file([#"{"messages": \#(turns)}"#]), tokenizer: tokenizer, maxLength: 512, template: .chatml)
        XCTAssertFalse(training.examples[0].isPromptOnly)
        XCTAssertEqual(training.examples[0].answer, " 3")
    }

    /// Rollouts of prompt-only data stop where the data's answers would: at the template's end
    /// of turn for conversations (prompt-only chat rows ran to max_completion_length before, a
    /// hostile review), at end-of-text for `{"prompt"}` rows; a row with an answer decides first.
    func testPromptOnlyDataStopsWhereItsAnswersWould() throws {
        let chat = try Dataset(path: try file([#"{"messages": [{"role": "user", "content": "copy ab ="}]}"#]), tokenizer: tokenizer,
                               maxLength: 512, template: .chatml, rows: .examplesOrPrompts)
        XCTAssertEqual(RolloutPrompts.stopId(chat.examples, tokenizer: tokenizer, template: .chatml, conversations: true), ByteTokenizer.imEnd)
        let plain = try Dataset(path: try file([#"{"prompt": "copy ab ="}"#]), tokenizer: tokenizer, maxLength: 512, rows: .examplesOrPrompts)
        XCTAssertEqual(RolloutPrompts.stopId(plain.examples, tokenizer: tokenizer, template: .chatml, conversations: false), tokenizer.eosId)
        // A prompt-only conversation first, then a {prompt, completion} row: the row with an answer decides.
        let mixed = try Dataset(path: try file([#"{"messages": [{"role": "user", "content": "a"}]}"#, #"{"prompt": "copy ab =", "completion": " ab"}"#]),
                                tokenizer: tokenizer, maxLength: 512, template: .chatml, rows: .examplesOrPrompts)
        XCTAssertEqual(RolloutPrompts.stopId(mixed.examples, tokenizer: tokenizer, template: .chatml, conversations: true), tokenizer.eosId)
    }
}
