import Foundation
import XCTest
import Models
@testable import Training

/// `{"text": ...}` rows (TRL's language-modeling format): the text and the end token, every
/// token after the first trained, no prompt and no reference answer; malformed ones named.
final class TextRowsTests: XCTestCase {
    let tokenizer = ByteTokenizer()

    func records(_ text: String, rows: JSONLReader.Rows = .examples) throws -> [SourcedRecord] {
        try JSONLReader.parse(Array(text.utf8), path: "data.jsonl", rows: rows).records
    }

    func readError(_ text: String, rows: JSONLReader.Rows = .examples) -> String {
        do { _ = try records(text, rows: rows); return "accepted" } catch { return "\(error)" }
    }

    func testATextRowTrainsEveryToken() throws {
        let read = try records(#"{"text": "add 2 3 = 5"}"# + "\n" + #"{"prompt": "add 1 1 =", "completion": " 2"}"#)
        XCTAssertEqual(read[0].record, .text("add 2 3 = 5"))
        let data = try Dataset(records: read, path: "data.jsonl", tokenizer: tokenizer, maxLength: 64)
        let e = data.examples[0]
        XCTAssertEqual(e.ids, Array("add 2 3 = 5".utf8).map(Int32.init) + [tokenizer.eosId], "the text, then the end token")
        XCTAssertEqual(e.lossMask, [0] + [UInt8](repeating: 1, count: e.ids.count - 1))
        XCTAssertEqual(lossTokenCount(e), e.ids.count - 1)
        XCTAssertNil(e.answer, "nothing to generate towards")
        XCTAssertEqual(e.promptLength, 0)
        XCTAssertEqual(e.source, "data.jsonl:1")
        // The loss scope switches leave text rows as they are, and the other row as it was.
        let narrow = try Dataset(records: read, path: "data.jsonl", tokenizer: tokenizer, maxLength: 64,
                                 lossScope: LossScope(completionOnly: false, assistantOnly: false))
        XCTAssertEqual(narrow.examples[0], e)
        XCTAssertEqual(data.examples[1], try ChatFormat.example(from: read[1], tokenizer: tokenizer))
        XCTAssertEqual([data.report.textRows, data.report.promptCompletionRows, data.report.conversations], [1, 1, 0])
    }

    /// A rendered transcript: its special-token strings are the special tokens (as TRL's
    /// tokenizer(text)), and a text ending with the end token gets no second one.
    func testSpecialTokensInTextAreSpecialAndTheEndTokenIsNotDoubled() throws {
        let read = try records(#"{"text": "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|><|endoftext|>"}"#)
        let e = try Dataset(records: read, path: "data.jsonl", tokenizer: tokenizer, maxLength: 64).examples[0]
        let b = { (s: String) in Array(s.utf8).map(Int32.init) }
        XCTAssertEqual(e.ids, [257] + b("user\nhi") + [258] + b("\n") + [257] + b("assistant\nyo") + [258, 256])
    }

    /// Beside "messages" or "prompt", "text" is another column and is ignored, as TRL reads such
    /// rows (a table's text column, generate --json output used as prompts).
    func testTextBesideAnotherFormatIsIgnored() throws {
        XCTAssertEqual(try records(#"{"prompt": "p", "completion": "c", "text": "x"}"#)[0].record, .promptCompletion(prompt: "p", completion: "c"))
        XCTAssertEqual(try records(#"{"prompt": "p", "text": "p q", "finish": "eos"}"#, rows: .prompts)[0].record, .promptCompletion(prompt: "p", completion: ""))
        XCTAssertEqual(try records(#"{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "text": "x"}"#)[0].record,
                       .messages([ChatMessage(role: .user, content: "a"), ChatMessage(role: .assistant, content: "b")]))
    }

    /// TRL's dataset_text_field: another field holds the text; "text" is then another column.
    func testAnotherTextField() throws {
        let read = try JSONLReader.parse(Array(#"{"content": "abc", "text": "x"}"#.utf8), path: "data.jsonl", textField: "content").records
        XCTAssertEqual(read[0].record, .text("abc"))
        XCTAssertThrowsError(try JSONLReader.parse(Array(#"{"content": ""}"#.utf8), path: "data.jsonl", textField: "content")) {
            XCTAssertEqual("\($0)", #"data.jsonl:1: empty "content""#)
        }
        // The line names the field the run reads ("text" is another column then).
        XCTAssertThrowsError(try JSONLReader.parse(Array(#"{"text": "abc"}"#.utf8), path: "data.jsonl", textField: "content")) {
            XCTAssertEqual("\($0)", #"data.jsonl:1: missing fields: need "prompt" and "completion", "messages", or "content""#)
        }
    }

    func testMalformedTextRowsAreNamed() {
        XCTAssertEqual(readError(#"{"text": ""}"#), "data.jsonl:1: empty text")
        XCTAssertEqual(readError(#"{"text": 5}"#), #"data.jsonl:1: field "text" must be a string"#)
        XCTAssertEqual(readError(#"{"text": "a", "completion": "b"}"#), #"data.jsonl:1: missing field "prompt""#)
        XCTAssertEqual(readError(#"{"text": "a"}"#, rows: .prompts),
                       #"data.jsonl:1: a {"text"} row has no prompt to answer: give "prompt" (or "messages")"#)
    }
}
