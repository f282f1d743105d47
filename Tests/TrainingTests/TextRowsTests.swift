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
    }

    func testMalformedTextRowsAreNamed() {
        XCTAssertEqual(readError(#"{"text": ""}"#), "data.jsonl:1: empty text")
        XCTAssertEqual(readError(#"{"text": 5}"#), #"data.jsonl:1: field "text" must be a string"#)
        XCTAssertEqual(readError(#"{"text": "a", "completion": "b"}"#),
                       #"data.jsonl:1: has both "text" and "prompt"/"completion"; use one format per line"#)
        XCTAssertEqual(readError(#"{"text": "a", "messages": []}"#),
                       #"data.jsonl:1: has both "text" and "messages"; use one format per line"#)
        XCTAssertEqual(readError(#"{"text": "a"}"#, rows: .prompts),
                       #"data.jsonl:1: a {"text"} row has no prompt to answer: give "prompt" (or "messages")"#)
    }
}
