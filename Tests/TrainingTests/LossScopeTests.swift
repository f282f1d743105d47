import Foundation
import XCTest
import Models
@testable import Training

/// `completion_only_loss` / `assistant_only_loss` (TRL's SFTConfig names): turned off, a row
/// trains every token after the first, as TRL's labels = input_ids; only the mask changes, and
/// each switch acts on its own kind of row.
final class LossScopeTests: XCTestCase {
    let tokenizer = ByteTokenizer()
    let pair = SourcedRecord(record: .promptCompletion(prompt: "add 2 3 =", completion: " 5"), path: "d.jsonl", line: 1)
    let chat = SourcedRecord(record: .messages([ChatMessage(role: .system, content: "be brief"),
                                                ChatMessage(role: .user, content: "add 2 3 ="),
                                                ChatMessage(role: .assistant, content: "5"),
                                                ChatMessage(role: .user, content: "mul 2 3 ="),
                                                ChatMessage(role: .assistant, content: "6")]), path: "d.jsonl", line: 2)

    func examples(_ scope: LossScope) throws -> [Example] {
        try Dataset(records: [pair, chat], path: "d.jsonl", tokenizer: tokenizer, maxLength: 512, lossScope: scope).examples
    }

    func testEachSwitchTrainsEveryTokenOfItsOwnRowsOnly() throws {
        let answers = try examples(.answersOnly)
        let plain = [try ChatFormat.example(from: pair, tokenizer: tokenizer), try ChatFormat.example(from: chat, tokenizer: tokenizer)]
        XCTAssertEqual(answers, plain, "the default is the rows as the template marks them")
        // The default trains part of each row: otherwise the checks below could not tell.
        for e in answers { XCTAssertLessThan(lossTokenCount(e), e.ids.count - 1, e.source) }

        func everyToken(_ e: Example) -> [UInt8] { [0] + [UInt8](repeating: 1, count: e.ids.count - 1) }
        let noCompletionOnly = try examples(LossScope(completionOnly: false))
        XCTAssertEqual(noCompletionOnly[0].lossMask, everyToken(plain[0]))
        XCTAssertEqual(noCompletionOnly[1], plain[1], "completion_only_loss leaves {messages} rows alone")
        let noAssistantOnly = try examples(LossScope(assistantOnly: false))
        XCTAssertEqual(noAssistantOnly[0], plain[0], "assistant_only_loss leaves {prompt, completion} rows alone")
        XCTAssertEqual(noAssistantOnly[1].lossMask, everyToken(plain[1]))
        // Ids, where generation starts and the reference answer do not move.
        for (e, p) in zip([noCompletionOnly[0], noAssistantOnly[1]], plain) {
            XCTAssertEqual(e.ids, p.ids)
            XCTAssertEqual(e.promptLength, p.promptLength)
            XCTAssertEqual(e.answer, p.answer)
            XCTAssertEqual(lossTokenCount(e), e.ids.count - 1)
        }
    }

    /// Truncation cuts the widened mask with the ids: left truncation keeps every kept
    /// position trained (position 0 of the cut row included, which is never predicted).
    func testTruncationCutsTheWidenedMask() throws {
        let scope = LossScope(completionOnly: false)
        let right = try Dataset(records: [pair], path: "d.jsonl", tokenizer: tokenizer, maxLength: 5,
                                truncation: .right, lossScope: scope).examples[0]
        XCTAssertEqual(right.ids.count, 5)
        XCTAssertEqual(lossTokenCount(right), 4, "a prompt-only cut still trains: its tokens are trained now")
        let left = try Dataset(records: [pair], path: "d.jsonl", tokenizer: tokenizer, maxLength: 5,
                               truncation: .left, lossScope: scope).examples[0]
        XCTAssertEqual(lossTokenCount(left), 4)
    }
}
