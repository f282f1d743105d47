import Foundation
import XCTest
import TestSupport
@testable import Models
@testable import Training

/// TRL's conversational prompt/completion rows (`PromptedConversation.swift`). The expected
/// masks come from transformers' ids in Fixtures/hf/expected/chat-templates.json: TRL's
/// completion mask is 0 over `apply_chat_template(prompt, add_generation_prompt=True)` (the
/// fixture's `prompt_ids`) and 1 over the rest of `apply_chat_template(prompt + completion)`.
final class PromptedConversationTests: XCTestCase {
    private func read(_ line: String, rows: JSONLReader.Rows = .examples) throws -> DataRecord {
        try JSONLReader.parse(Array(line.utf8), path: "d.jsonl", rows: rows).records[0].record
    }

    private func problem(_ line: String, rows: JSONLReader.Rows = .examples) -> String? {
        do { _ = try read(line, rows: rows); return nil } catch { return "\(error)" }
    }

    private let user = #"{"role": "user", "content": "2+3="}"#
    private let answer = #"{"role": "assistant", "content": "5"}"#

    func testRowsAreReadAsTRLReadsThem() throws {
        let hi = ChatMessage(role: .user, content: "2+3="), five = ChatMessage(role: .assistant, content: "5")
        XCTAssertEqual(try read(#"{"prompt": [\#(user)], "completion": [\#(answer)]}"#),
                       .promptedConversation(prompt: [hi], completion: five))
        // Prompt-only rows (grpo's data, TRL's GRPO datasets) and prompts: the conversation.
        XCTAssertEqual(try read(#"{"prompt": [\#(user)]}"#, rows: .examplesOrPrompts), .messages([hi]))
        XCTAssertEqual(try read(#"{"prompt": [\#(user)], "completion": null}"#, rows: .prompts), .messages([hi]))
        XCTAssertEqual(try read(#"{"prompt": [\#(user)], "completion": [\#(answer)]}"#, rows: .prompts), .messages([hi, five]))
        XCTAssertEqual(try read(#"{"prompt": [\#(user)], "completion": [{"role": "assistant", "content": ""}]}"#, rows: .prompts), .messages([hi]))
        XCTAssertEqual(try read(#"{"prompt": [\#(user)], "completion": [\#(answer)]}"#, rows: .examplesOrPrompts),
                       .promptedConversation(prompt: [hi], completion: five))
    }

    func testMalformedRowsNameTheField() {
        XCTAssertEqual(problem(#"{"prompt": [\#(user)]}"#),
                       #"d.jsonl:1: missing field "completion" (a list of one assistant turn, after a conversational "prompt")"#)
        XCTAssertEqual(problem(#"{"prompt": [\#(user)], "completion": "5"}"#),
                       #"d.jsonl:1: field "prompt" is a list of turns and "completion" is not: give the completion as [{"role": "assistant", "content": ...}]"#)
        XCTAssertEqual(problem(#"{"prompt": "2+3=", "completion": [\#(answer)]}"#),
                       #"d.jsonl:1: field "prompt" is a text and "completion" a list of turns: give both as turns (TRL's conversational form) or both as text"#)
        XCTAssertEqual(problem(#"{"completion": [\#(answer)]}"#),
                       #"d.jsonl:1: missing field "prompt": a conversational "completion" (a list of turns) follows a conversational "prompt""#)
        XCTAssertEqual(problem(#"{"prompt": [\#(user), \#(answer)], "completion": [\#(answer)]}"#),
                       #"d.jsonl:1: "prompt" ends with an assistant turn; it holds the turns before the completion"#)
        XCTAssertEqual(problem(#"{"prompt": [\#(user)], "completion": [\#(answer), \#(answer)]}"#),
                       #"d.jsonl:1: "completion" must be one assistant turn, [{"role": "assistant", "content": ...}]"#)
        XCTAssertEqual(problem(#"{"prompt": [\#(user)], "completion": [\#(user)]}"#),
                       #"d.jsonl:1: "completion" must be one assistant turn, [{"role": "assistant", "content": ...}]"#)
        XCTAssertEqual(problem(#"{"prompt": [{"role": "user"}], "completion": [\#(answer)]}"#),
                       #"d.jsonl:1: prompt[0]: missing field "content""#)
        XCTAssertEqual(problem(#"{"prompt": [\#(user)], "completion": [{"role": "assistant", "content": ""}]}"#),
                       #"d.jsonl:1: empty completion (last assistant turn)"#)
    }

    /// Under every pair of switches the mask is TRL's: (completion_only_loss ? after the prompt
    /// : all) × (assistant_only_loss ? the assistant turns' tokens : all), on the ids of
    /// transformers for every template of the fixture.
    func testMasksAreTRLsOnTransformersIds() throws {
        let f = try JSONDecoder().decode(ChatTemplateDefaultsTests.Fixture.self, from: Data(contentsOf: URL(
            fileURLWithPath: ChatTemplateDefaultsTests.root + "/expected/chat-templates.json")))
        let tokenizers = try ["qwen2", "llama3", "qwen3"].reduce(into: [String: Tokenizer]()) {
            $0[$1] = try ModelDirectory.loadTokenizer(ChatTemplateDefaultsTests.root + "/tokenizers/" + $1)
        }
        var checked = 0
        for c in f.cases {
            let turns = c.turns
            guard turns.last?.role == .assistant, turns.dropLast().last?.role != .assistant else { continue }
            let tok = try XCTUnwrap(tokenizers[c.tokenizer])
            let template = try XCTUnwrap(ChatTemplate.recognise(f.templates[c.template]!))
            let record = SourcedRecord(record: .promptedConversation(prompt: Array(turns.dropLast()), completion: turns.last!), path: "d.jsonl", line: 1)
            let assistant = try ChatFormat.conversation(turns, source: "d.jsonl:1", tokenizer: tok, template: template).lossMask
            let trlCompletion = [UInt8](repeating: 0, count: c.prompt_ids.count) + [UInt8](repeating: 1, count: c.ids.count - c.prompt_ids.count)
            for (completionOnly, assistantOnly) in [(true, true), (true, false), (false, true), (false, false)] {
                let scope = LossScope(completionOnly: completionOnly, assistantOnly: assistantOnly)
                let e = scope.apply(try ChatFormat.example(from: record, tokenizer: tok, template: template), record: record.record)
                XCTAssertEqual(e.ids, c.ids, c.template)
                var expected = (0..<c.ids.count).map { i -> UInt8 in
                    (completionOnly ? trlCompletion[i] : 1) & (assistantOnly ? assistant[i] : 1)
                }
                expected[0] = 0   // nothing precedes the first token to predict it from
                XCTAssertEqual(e.lossMask, expected, "\(c.template) completion_only \(completionOnly) assistant_only \(assistantOnly)")
                XCTAssertEqual(e.promptLength, c.prompt_ids.count, "generation starts after the prompt")
            }
            // TRL's default mask trains the template's line break after the answer's end token,
            // which assistant_only_loss's does not: the two differ on ChatML.
            if case .chatml = template.layout { XCTAssertNotEqual(trlCompletion.suffix(1), assistant.suffix(1), c.template) }
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 6)
    }
}
