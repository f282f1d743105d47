import Foundation
import XCTest
@testable import Models
@testable import Training

/// A template recognised by its control tokens but writing its turns otherwise than the layout
/// sft-dist lays conversations out with (`ChatTemplateFidelity.swift`) is said on the `chat
/// template:` line; before, a trimmed, upper-cased or bos-prefixed ChatML template was taken as
/// chatml without a word (a hostile review, checked against `apply_chat_template`). The
/// templates that ship with Qwen2, Qwen2.5, SmolLM2, Qwen3 and Llama 3/3.1/3.2 are not flagged.
final class ChatTemplateFidelityTests: XCTestCase {
    static func templates() throws -> [String: String] {
        let data = try Data(contentsOf: URL(fileURLWithPath: ChatTemplateDefaultsTests.root + "/expected/chat-templates.json"))
        return try JSONDecoder().decode(ChatTemplateDefaultsTests.Fixture.self, from: data).templates
    }

    /// A BOS the tokenizer names, so that a template's `bos_token` writes something.
    static func bos(_ layout: ChatTemplate.Layout) -> String { layout == .llama3 ? "<|begin_of_text|>" : "<s>" }

    /// What `bos_token` writes decides: with no BOS named (Qwen2's tokenizers) it writes nothing,
    /// so a ChatML template writing it is rendered as the layout is (it was said as a difference
    /// and the saved template replaced); a Llama 3 template writing no BOS (neither bos_token,
    /// as 3.1's and 3.0's `set` do, nor the literal) starts without one, unlike the layout
    /// (taken as llama3 without a word, and trained with a BOS transformers does not write).
    func testWhatBosTokenWritesDecides() throws {
        let templates = try Self.templates()
        let chatml = try XCTUnwrap(templates["chatml"]), llama = try XCTUnwrap(templates["llama3.1"]), llama30 = try XCTUnwrap(templates["llama3"])
        XCTAssertEqual(ChatTemplate.differences(from: "{{ bos_token }}" + chatml, layout: .chatml, bos: nil), [])
        XCTAssertEqual(ChatTemplate.differences(from: "{{ bos_token }}" + chatml, layout: .chatml, bos: "<s>").count, 1)
        for (name, jinja) in [("3.1", llama), ("3.0", llama30)] {
            XCTAssertEqual(ChatTemplate.differences(from: jinja, layout: .llama3, bos: "<|begin_of_text|>"), [], name)
            let noBOS = jinja.replacingOccurrences(of: "{{- bos_token }}", with: "").replacingOccurrences(of: "bos_token + content", with: "content")
            XCTAssertNotEqual(noBOS, jinja, name)
            XCTAssertEqual(ChatTemplate.differences(from: noBOS, layout: .llama3, bos: "<|begin_of_text|>"),
                           ["it writes no bos_token before its first turn, where the llama3 layout writes <|begin_of_text|>"], name)
            let literal = "{{ '<|begin_of_text|>' }}" + noBOS
            XCTAssertEqual(ChatTemplate.differences(from: literal, layout: .llama3, bos: nil), [], name)
            // As text outside any tag too (a review: it was said as missing, and the template replaced).
            XCTAssertEqual(ChatTemplate.differences(from: "<|begin_of_text|>" + noBOS, layout: .llama3, bos: nil), [], name)
        }
    }

    /// The default system message is said as a JSON string: a newline or an escape sequence in
    /// it broke the note over lines and reached the terminal raw (a fuzzing review).
    func testTheDefaultSystemMessageIsQuotedOnOneLine() throws {
        let qwen2 = try XCTUnwrap(Self.templates()["qwen2"])
        let edited = qwen2.replacingOccurrences(of: "You are a helpful assistant.", with: "You are\\na helpful\u{1B}[31m assistant.")
        XCTAssertNotEqual(edited, qwen2)
        let t = try XCTUnwrap(ChatTemplate.recognise(edited))
        let said = t.whatWasRead(from: edited, bos: nil)
        XCTAssertTrue(said.contains(#"default system message "You are\na helpful\u001b[31m assistant.""#), said)
        XCTAssertFalse(said.contains("\n") || said.contains("\u{1B}"), said)
    }

    func testShippedTemplatesAreReproducedWithoutANote() throws {
        let templates = try Self.templates()
        XCTAssertEqual(templates.count, 8)
        for (name, jinja) in templates {
            let t = try XCTUnwrap(ChatTemplate.recognise(jinja), name)
            XCTAssertEqual(ChatTemplate.differences(from: jinja, layout: t.layout, bos: Self.bos(t.layout)), [], name)
            XCTAssertFalse(t.whatWasRead(from: jinja, bos: Self.bos(t.layout)).contains("not as this template writes them"), name)
        }
    }

    func testTemplatesWritingTurnsOtherwiseAreSaid() throws {
        let templates = try Self.templates()
        let chatml = try XCTUnwrap(templates["chatml"]), llama = try XCTUnwrap(templates["llama3.1"])
        let turn = "'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'"
        XCTAssertTrue(chatml.contains(turn), chatml)
        let variants: [(String, String, String)] = [
            ("trim", chatml.replacingOccurrences(of: "message['content']", with: "message['content'] | trim"), "its turns are not written as"),
            ("upper", chatml.replacingOccurrences(of: "message['role']", with: "message['role'] | upper"), "its turns are not written as"),
            ("no newline", chatml.replacingOccurrences(of: "'<|im_end|>' + '\\n'", with: "'<|im_end|>'"), "its turns are not written as"),
            ("bos literal", "{{ '<|endoftext|>' }}" + chatml, "it writes '<|endoftext|>' outside its turns"),
            ("bos_token", "{{ bos_token }}" + chatml, "it writes bos_token"),
            ("system dropped", "{% set loop_messages = messages[1:] %}" + chatml.replacingOccurrences(of: "in messages", with: "in loop_messages"),
             "a loop over another list than messages"),
            ("llama untrimmed", llama.replacingOccurrences(of: "message['content'] | trim", with: "message['content']"), "is not trimmed"),
        ]
        for (name, jinja, needle) in variants {
            XCTAssertNotEqual(jinja, name.hasPrefix("llama") ? llama : chatml, "\(name): the edit changed nothing")
            let t = try XCTUnwrap(ChatTemplate.recognise(jinja), name)
            let said = t.whatWasRead(from: jinja, bos: Self.bos(t.layout))
            XCTAssertTrue(said.contains(needle) && said.contains("not as this template writes them"), "\(name): \(said)")
        }
    }

    /// Rendered the same, so no note: another loop variable, an empty literal; a fixed user
    /// turn outside the loop is not a system turn and is said.
    func testTheLoopVariableIsTheTemplatesOwn() throws {
        let chatml = try XCTUnwrap(Self.templates()["chatml"])
        let renamed = chatml.replacingOccurrences(of: "for message in messages", with: "for m in messages")
            .replacingOccurrences(of: "message['", with: "m['")
        XCTAssertNotEqual(renamed, chatml)
        XCTAssertEqual(ChatTemplate.differences(from: renamed, layout: .chatml, bos: "<s>"), [])
        XCTAssertEqual(ChatTemplate.differences(from: "{{ '' }}" + chatml, layout: .chatml, bos: "<s>"), [])
        let fixedUser = "{{ '<|im_start|>user\\nAlways.<|im_end|>\\n' }}" + chatml
        XCTAssertEqual(ChatTemplate.differences(from: fixedUser, layout: .chatml, bos: "<s>").count, 1, "\(ChatTemplate.differences(from: fixedUser, layout: .chatml, bos: "<s>"))")
    }

    /// A run on messages saves the template it trained with; a recognised template that writes
    /// its turns otherwise was kept as the model's, so `apply_chat_template` on the fine-tuned
    /// model laid conversations out unlike training (the diff's review).
    func testATemplateWrittenOtherwiseIsReplacedInTheSavedTokenizer() throws {
        let chatml = try XCTUnwrap(Self.templates()["chatml"])
        let trimmed = chatml.replacingOccurrences(of: "message['content']", with: "message['content'] | trim")
        for (jinja, replaced) in [(chatml, false), (trimmed, true)] {
            let t = try BPETokenizer(path: ChatTemplateDefaultsTests.root + "/tokenizers/qwen2/tokenizer.json")
            try t.recordChatTemplate(jinja)
            let line = try ChatTemplateRecord.record(.chatml, in: t, dataHasMessages: true)
            XCTAssertEqual(line != nil, replaced, line ?? "nil")
            if replaced, let line {
                XCTAssertTrue(line.contains("replacing its own, which writes its turns otherwise"), line)
                XCTAssertEqual(ChatTemplate.differences(from: try XCTUnwrap(t.chatTemplateText), layout: .chatml, bos: t.templateBOS), [])
            }
        }
    }
}
