import Foundation
import XCTest
import Models
@testable import Training

/// Pairs without a `"prompt"` against TRL 1.16's own `extract_prompt`
/// (`scripts/make-implicit-prompt-references`): texts compared by code point, the space rule,
/// one side a beginning of the other, conversations; and the rows sft-dist refuses where TRL
/// would make an empty or wrong prompt, or answer with several turns.
final class ImplicitPromptTests: XCTestCase {
    enum Side: Decodable, Equatable {
        case text(String), turns([[String: String]])
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) { self = .text(s) } else { self = .turns(try c.decode([[String: String]].self)) }
        }
    }
    struct Case: Decodable { var row: String; var trl: [String: Side]; var refused: Bool }
    /// A TPO triple: TRL's `_extract_triple_prompt` split (nil where it raised).
    struct Triple: Decodable { var row: String; var trl: [String: Side]?; var refused: Bool }
    struct Fixture: Decodable { var cases: [Case]; var triples: [Triple] }
    static let fixture: Fixture = referenceFixture("implicit-prompt-reference.json")

    func parse(_ row: String) -> Result<PairRecord, JSONLReader.LineProblem> { PairReader.parseLine(ArraySlice(Array(row.utf8))) }

    func testRowsSplitAsTRLSplitsThem() throws {
        let cases = Self.fixture.cases.filter { !$0.refused }
        XCTAssertGreaterThanOrEqual(cases.count, 10)
        for c in cases {
            guard case .success(let pair) = parse(c.row) else { XCTFail("\(c.row): \(parse(c.row))"); continue }
            switch (c.trl["prompt"], c.trl["chosen"], c.trl["rejected"]) {
            case (.text(let prompt)?, .text(let chosen)?, .text(let rejected)?):
                XCTAssertEqual(pair.chosen, .promptCompletion(prompt: prompt, completion: chosen), c.row)
                XCTAssertEqual(pair.rejected, .promptCompletion(prompt: prompt, completion: rejected), c.row)
            case (.turns(let prompt)?, .turns(let chosen)?, .turns(let rejected)?):
                func messages(_ turns: [[String: String]]) -> [ChatMessage] {
                    turns.map { ChatMessage(role: ChatMessage.Role(rawValue: $0["role"]!)!, content: $0["content"]!) }
                }
                XCTAssertEqual(pair.chosen, .messages(messages(prompt + chosen)), c.row)
                XCTAssertEqual(pair.rejected, .messages(messages(prompt + rejected)), c.row)
            default: XCTFail("fixture case \(c.row)")
            }
        }
    }

    /// tpo's gold answer without a "prompt": stripped of the sides' prompt as TRL's
    /// `_extract_triple_prompt` strips it; refused where TRL raises, and where TRL would go on
    /// with an empty gold answer or one of several turns.
    func testTriplesSplitAsTRLSplitsThem() throws {
        let triples = Self.fixture.triples
        XCTAssertEqual(triples.filter { !$0.refused }.count, 3)
        XCTAssertTrue(triples.contains { $0.refused && $0.trl == nil } && triples.contains { $0.refused && $0.trl != nil })
        for t in triples {
            let parsed = PairReader.parseLine(ArraySlice(Array(t.row.utf8)), readsGold: true)
            if t.refused {
                guard case .failure(let problem) = parsed else { XCTFail("accepted: \(t.row)"); continue }
                XCTAssertTrue(problem.reason.contains("reference"), problem.reason)
                continue
            }
            guard case .success(let pair) = parsed else { XCTFail("\(t.row): \(parsed)"); continue }
            switch (t.trl?["prompt"], t.trl?["reference"]) {
            case (.text(let prompt)?, .text(let gold)?):
                XCTAssertEqual(pair.gold, .promptCompletion(prompt: prompt, completion: gold), t.row)
            case (.turns(let prompt)?, .turns(let gold)?):
                let messages = (prompt + gold).map { ChatMessage(role: ChatMessage.Role(rawValue: $0["role"]!)!, content: $0["content"]!) }
                XCTAssertEqual(pair.gold, .messages(messages), t.row)
            default: XCTFail("fixture triple \(t.row)")
            }
        }
    }

    /// Where TRL's prompt would be empty or wrong, or its answer several turns: one line, no pair.
    func testRowsTRLWouldMisreadAreRefused() {
        let cases = Self.fixture.cases.filter(\.refused)
        XCTAssertGreaterThanOrEqual(cases.count, 8)
        for c in cases {
            guard case .failure(let problem) = parse(c.row) else { XCTFail("accepted: \(c.row)"); continue }
            XCTAssertTrue(problem.reason.hasPrefix("chosen and rejected "), problem.reason)
            XCTAssertFalse(problem.reason.contains("\n"), problem.reason)
        }
    }

    func testBadImplicitRowsSayWhy() {
        func reason(_ row: String) -> String {
            if case .failure(let p) = parse(row) { return p.reason }
            return "accepted"
        }
        XCTAssertEqual(reason(#"{"chosen": "same text", "rejected": "same text"}"#), "chosen and rejected are identical")
        XCTAssertEqual(reason(#"{"chosen": "a b"}"#), #"missing field "rejected""#)
        XCTAssertEqual(reason(#"{"chosen": "a b", "rejected": [{"role": "assistant", "content": "c"}]}"#),
                       #"without a "prompt", "chosen" and "rejected" must both be texts or both whole conversations"#)
        XCTAssertEqual(reason(#"{"chosen": [{"role": "user", "content": "q"}, {"role": "robot", "content": "a"}], "rejected": [{"role": "user", "content": "q"}]}"#),
                       #"chosen[1]: unknown role "robot" (expected system, user or assistant)"#)
        XCTAssertEqual(reason(#"{"chosen": {"role": "assistant", "content": "a"}, "rejected": {"role": "assistant", "content": "b"}}"#),
                       #"field "chosen" must be a text or a list of turns"#)
        XCTAssertEqual(reason(#"{"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "sure?"}]}"#),
                       #"chosen and rejected must be one conversation that differs only in its last assistant turn (without a "prompt", it is the shared beginning of "chosen" and "rejected", as TRL's extract_prompt takes it); after 1 shared turn, chosen has 1 more and rejected 2"#)
        // Prompt turns in "messages" beside whole conversations would be lost: refused.
        XCTAssertEqual(reason(#"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}], "chosen": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}], "rejected": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}]}"#),
                       #"has "messages" (the turns before the answer) beside whole conversations in "chosen" and "rejected": give the prompt's turns once, in "messages" with one-turn answers, or the whole conversations alone"#)
        // An explicit prompt is read as before, whatever the answers share.
        guard case .success(let pair) = parse(#"{"prompt": "Q:", "chosen": " same start a", "rejected": " same start b"}"#) else { return XCTFail() }
        XCTAssertEqual(pair.chosen, .promptCompletion(prompt: "Q:", completion: " same start a"))
    }

    /// A reward model's pairs (`readsMargins`) keep their sides whole, as TRL's RewardTrainer
    /// tokenizes them: texts and conversations, sides that share no beginning too.
    func testRewardPairsKeepTheirSidesWhole() {
        func records(_ row: String) -> [DataRecord]? {
            guard case .success(let p) = PairReader.parseLine(ArraySlice(Array(row.utf8)), readsMargins: true) else { return nil }
            return [p.chosen, p.rejected]
        }
        XCTAssertEqual(records(#"{"chosen": "Q: it is the best.", "rejected": "Q: it is therefore bad."}"#),
                       [.text("Q: it is the best."), .text("Q: it is therefore bad.")])
        XCTAssertEqual(records(#"{"chosen": "Good answer.", "rejected": "Bad answer."}"#), [.text("Good answer."), .text("Bad answer.")])
        let user = ChatMessage(role: .user, content: "Hi")
        XCTAssertEqual(records(#"{"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "a"}], "rejected": [{"role": "user", "content": "Yo"}, {"role": "assistant", "content": "b"}]}"#),
                       [.messages([user, ChatMessage(role: .assistant, content: "a")]), .messages([ChatMessage(role: .user, content: "Yo"), ChatMessage(role: .assistant, content: "b")])])
        XCTAssertNil(records(#"{"chosen": "same", "rejected": "same"}"#), "identical sides are still a bad line")
    }

    /// Read whole, the sides share no prompt for the pair dataset to compare: "Good answer." and
    /// "Bad answer." (their first tokens differ under a tokenizer with no BOS) and conversations
    /// that differ in their user turn are kept, as TRL's RewardTrainer keeps them; under dpo's
    /// split, the same rows are refused.
    func testRewardPairsReadWholeAreKeptByThePairDataset() throws {
        let rows = [#"{"chosen": "Good answer.", "rejected": "Bad answer."}"#,
                    #"{"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "a"}], "rejected": [{"role": "user", "content": "Yo"}, {"role": "assistant", "content": "b"}]}"#,
                    #"{"chosen": "Q: it is the best.", "rejected": "Q: it is therefore bad."}"#]
        let path = NSTemporaryDirectory() + "whole-pairs-\(UUID().uuidString).jsonl"
        _ = FileManager.default.createFile(atPath: path, contents: Data(rows.joined(separator: "\n").utf8))
        let tokenizer = ByteTokenizer()
        XCTAssertNil(tokenizer.bosId)
        let set = try Dataset(pairsAt: path, tokenizer: tokenizer, maxLength: 64, truncation: .right, template: .chatml,
                              skipBadLines: false, sequenceScores: true)
        XCTAssertEqual(set.count, 6, "three pairs, none dropped")
        XCTAssertEqual(set.report.textRows, 2)
        XCTAssertEqual(set.report.conversations, 2)
        XCTAssertThrowsError(try Dataset(pairsAt: path, tokenizer: tokenizer, maxLength: 64, truncation: .right, template: .chatml,
                                         skipBadLines: false, sequenceScores: false))
    }

    /// Python's == on the turns: a number by value (1 and 1.0 and true alike), a null, a nested
    /// list; an extra key or another string makes turns differ.
    func testTurnsCompareAsPythonDicts() {
        typealias T = ImplicitPrompt.Turn
        func obj(_ json: String) -> Any { try! JSONSerialization.jsonObject(with: Data(json.utf8)) }
        XCTAssertEqual(T(value: obj(#"{"role": "user", "content": "a", "n": 1, "x": [null, 2.0]}"#)),
                       T(value: obj(#"{"content": "a", "role": "user", "n": 1.0, "x": [null, 2]}"#)))
        XCTAssertEqual(T(value: obj(#"{"n": true}"#)), T(value: obj(#"{"n": 1}"#)))
        XCTAssertNotEqual(T(value: obj(#"{"role": "user", "content": "a"}"#)), T(value: obj(#"{"role": "user", "content": "a", "name": "b"}"#)))
        XCTAssertNotEqual(T(value: obj(#"{"content": "caf\u00e9"}"#)), T(value: obj(#"{"content": "cafe\u0301"}"#)))
        XCTAssertNotEqual(T(value: obj(#"{"x": [1, 2]}"#)), T(value: obj(#"{"x": [1]}"#)))
        XCTAssertNotEqual(T(value: obj(#"{"x": null}"#)), T(value: obj(#"{"x": 0}"#)))
    }

    /// kto reads a pair as a desirable and an undesirable row: an implicit prompt too.
    func testKTOReadsImplicitPairs() throws {
        let rows = try UnpairedReader.rows(from: ["chosen": "2+2 = 4", "rejected": "2+2 = 5"])
        XCTAssertEqual(rows.map(\.label), [true, false])
        XCTAssertEqual(rows.map(\.record), [.promptCompletion(prompt: "2+2 =", completion: " 4"), .promptCompletion(prompt: "2+2 =", completion: " 5")])
    }
}
