import Foundation
import XCTest
@testable import Training

/// Qwen3's reasoning blocks (`ThinkingReplies.swift`): the split at `</think>` as the template's
/// Python-string expressions compute it, and scorers that compare the answer after a leading
/// block, not the reasoning. Whole conversations against transformers: ChatTemplateDefaultsTests.
final class ThinkingRepliesTests: XCTestCase {
    func testSplitAsTheTemplateComputesIt() {
        // content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n'), and [-1].lstrip('\n').
        XCTAssertTrue(ThinkingReplies.split("<think>\nadd them\n\n</think>\n\n42") == ("add them", "42"))
        XCTAssertTrue(ThinkingReplies.split("42") == ("", "42"))
        XCTAssertTrue(ThinkingReplies.split("a</think>b</think>\nc") == ("a", "c"), "first part's reasoning, last part's reply")
        XCTAssertTrue(ThinkingReplies.split("x<think>y<think>\nz\n</think>w") == ("z", "w"), "after the last <think>")
        XCTAssertTrue(ThinkingReplies.split("r\r\n</think>\r\nq") == ("r\r", "\r\nq"), "only U+000A is trimmed, as Python's strip('\\n')")
    }

    func testRepliesGetABlockOnlyAfterTheLastQuery() {
        let m = [ChatMessage(role: .user, content: "hi"), ChatMessage(role: .assistant, content: "<think>greet</think>hello"),
                 ChatMessage(role: .user, content: "again"), ChatMessage(role: .assistant, content: "\nyes")]
        let q = ThinkingReplies.lastQueryIndex(m)
        XCTAssertEqual(q, 2)
        XCTAssertEqual(ThinkingReplies.reply(m, 1, lastQuery: q), "hello", "an earlier reply loses its reasoning")
        XCTAssertEqual(ThinkingReplies.reply(m, 3, lastQuery: q), "<think>\n\n</think>\n\nyes", "the last reply gets an empty block")
        let tool = m + [ChatMessage(role: .user, content: "<tool_response>\n1\n</tool_response>")]
        XCTAssertEqual(ThinkingReplies.lastQueryIndex(tool), 2, "a tool response is not a query")
    }

    /// A row's `reasoning_content` is the reasoning, and its content is the reply unsplit (the
    /// template reads `message.reasoning_content` first); the JSONL reader keeps it.
    func testReasoningContentIsTheReasoning() throws {
        let m = ChatMessage(role: .assistant, content: "a</think>b", reasoning: "\nr\n")
        XCTAssertTrue(ThinkingReplies.parts(m) == ("\nr\n", "a</think>b"))
        XCTAssertEqual(ThinkingReplies.reply([ChatMessage(role: .user, content: "q"), m], 1, lastQuery: 0), "<think>\nr\n</think>\n\na</think>b")
        let row = #"{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "42", "reasoning_content": "add"}]}"#
        let turns = try JSONLReader.chatMessages(from: (try JSONSerialization.jsonObject(with: Data(row.utf8)) as! [String: Any])["messages"]!, rows: .examples)
        XCTAssertEqual(turns.last?.reasoning, "add")
        let bad = #"[{"role": "assistant", "content": "42", "reasoning_content": 7}]"#
        XCTAssertThrowsError(try JSONLReader.chatMessages(from: try JSONSerialization.jsonObject(with: Data(bad.utf8)), rows: .examples)) {
            XCTAssertEqual(($0 as? JSONLReader.LineProblem)?.reason, #"messages[0]: field "reasoning_content" must be a string"#)
        }
    }

    func testScorersCompareTheAnswerAfterTheReasoning() throws {
        func item(_ completion: String, _ reference: String) -> ScoringItem {
            ScoringItem(prompt: "p", completion: completion, reference: reference, source: "t")
        }
        XCTAssertEqual(ThinkingReplies.answer("  <think>\nr\n</think>\n\n42"), "42")
        XCTAssertEqual(ThinkingReplies.answer("<think> never closed 42"), "<think> never closed 42")
        XCTAssertEqual(ThinkingReplies.answer("42 <think>x</think>"), "42 <think>x</think>", "only a leading block")
        XCTAssertEqual(try ExactMatchScorer().score([item("<think>\nit is 42\n</think>\n\n42", "42")]), [1])
        XCTAssertEqual(try ContainsScorer().score([item("<think>the answer is 42</think>\n\nno idea", "42")]), [0])
        XCTAssertEqual(try NumericScorer(tolerance: 0).score([item("<think>12 + 30 = 42</think>\n\nI do not know", "42")]), [0])
        XCTAssertEqual(try NumericScorer(tolerance: 0).score([item("<think>12 + 30</think>\n\n42", "42")]), [1])
    }
}
