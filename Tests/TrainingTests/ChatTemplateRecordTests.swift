import Foundation
import XCTest
import TestSupport
import Models
@testable import Training

/// A run on `messages` data saves its tokenizer with the chat template it trained with
/// (`Data/ChatTemplateRecord.swift`), so transformers' `apply_chat_template` on the fine-tuned
/// model lays conversations out as it learned them.
final class ChatTemplateRecordTests: XCTestCase {
    static let models = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../ModelsTests/Fixtures/hf/models").standardized.path
    var dir: String!
    override func setUpWithError() throws { dir = try makeTemporaryDirectory("sft-dist-chat-record") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// A copy of fixture `name` without its chat_template.jinja (when `dropTemplate`).
    func tokenizer(_ name: String, dropTemplate: Bool) throws -> BPETokenizer {
        let copy = dir + "/" + name
        try FileManager.default.copyItem(atPath: Self.models + "/" + name, toPath: copy)
        if dropTemplate { try? FileManager.default.removeItem(atPath: copy + "/chat_template.jinja") }
        return try XCTUnwrap(ModelDirectory.loadTokenizer(copy) as? BPETokenizer)
    }

    func savedConfig(_ t: BPETokenizer) throws -> [String: Any] {
        try JSONObjectFile.parse(try XCTUnwrap(t.sourceFiles["tokenizer_config.json"]), path: "tokenizer_config.json")
    }

    /// Rendered by transformers 5.24 (`apply_chat_template`, jinja2 3.1.6) on models this
    /// code saved (2026-12-03): a system/user/assistant and a two-exchange conversation each
    /// gave exactly `ChatFormat.conversation`'s text, and with `add_generation_prompt`
    /// `generationPrompt`'s; the token ids equalled `sft-dist score`'s for chatml and llama3
    /// (plain: see README, the role prefix's space). Pinned here, as transformers is not in CI.
    func testTheTemplatesAsTransformersRenderedThem() {
        XCTAssertEqual(ChatTemplate.chatml.jinja(bos: "", eos: "<|endoftext|>"),
                       #"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"#)
        XCTAssertEqual(ChatTemplate.llama3.jinja(bos: "<|begin_of_text|>", eos: "<|eot_id|>"),
                       #"{% for message in messages %}{% if loop.index0 == 0 %}{{ '<|begin_of_text|>' }}{% endif %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"#)
        XCTAssertEqual(ChatTemplate.plain.jinja(bos: "", eos: "<|endoftext|>"),
                       #"{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ 'assistant: ' }}{% else %}{{ '<|endoftext|>' }}{% endif %}"#)
        XCTAssertTrue(ChatTemplate.plain.jinja(bos: "", eos: #"it's \ "#).contains(#"{{ 'it\'s \\ ' }}"#), "a literal is escaped")
        for t in ChatTemplate.allCases { XCTAssertEqual(ChatTemplate.recognise(t.jinja(bos: "<s>", eos: "</s>")), t, "read back") }
    }

    func testATokenizerWithTheChatTokensButNoTemplateGetsTheOneTrained() throws {
        let t = try tokenizer("qwen2", dropTemplate: true)
        XCTAssertNil(t.chatTemplateText)
        XCTAssertEqual(try ChatTemplate.resolve("auto", tokenizer: t).template, .chatml)
        let line = try ChatTemplateRecord.record(.chatml, in: t, dataHasMessages: true)
        XCTAssertEqual(line, "chat template: the saved tokenizer records chatml, the template the messages are trained with (it had none)")
        XCTAssertEqual(try savedConfig(t)["chat_template"] as? String, HFTokenizerFiles.chatMLTemplate)
        XCTAssertEqual(try savedConfig(t)["eos_token"] as? String, "<|im_end|>", "the rest of the file is kept")
        XCTAssertEqual(try ChatTemplate.resolve("auto", tokenizer: t).reason, "recognised in the tokenizer's chat_template")
        // Saved and read back, the template is there.
        try ModelDirectory.save(try ModelDirectory.load(dir + "/qwen2").model, tokenizer: t, to: dir + "/saved", format: .hf)
        XCTAssertEqual(try ModelDirectory.loadTokenizer(dir + "/saved").chatTemplateText, HFTokenizerFiles.chatMLTemplate)
    }

    func testAnotherTemplateIsReplacedAndItsJinjaFileDropped() throws {
        let t = try tokenizer("llama", dropTemplate: false)
        XCTAssertNotNil(t.sourceFiles["chat_template.jinja"])
        let line = try ChatTemplateRecord.record(.plain, in: t, dataHasMessages: true)
        XCTAssertEqual(line, "chat template: the saved tokenizer records plain, the template the messages are trained with (replacing its own, which is not plain)")
        XCTAssertNil(t.sourceFiles["chat_template.jinja"], "newer transformers would read it instead of tokenizer_config.json")
        XCTAssertEqual(t.chatTemplateText, ChatTemplate.plain.jinja(bos: "<|begin_of_text|>", eos: "<|eot_id|>"))
        XCTAssertEqual(try savedConfig(t)["chat_template"] as? String, t.chatTemplateText)
    }

    func testNothingChangesWhenTheTemplateIsAlreadyThisOneOrTheDataHasNoMessages() throws {
        for (name, template) in [("qwen2", ChatTemplate(.chatml, defaultSystem: "You are a helpful assistant.")), ("llama", .llama3)] {
            let t = try tokenizer(name, dropTemplate: false)
            let files = t.sourceFiles
            XCTAssertNil(try ChatTemplateRecord.record(template, in: t, dataHasMessages: true), name)
            XCTAssertEqual(t.sourceFiles, files, name)
        }
        let gpt2 = try tokenizer("gpt2", dropTemplate: false), files = gpt2.sourceFiles
        XCTAssertNil(try ChatTemplateRecord.record(.plain, in: gpt2, dataHasMessages: false), "prompt/completion data: no template used")
        XCTAssertEqual(gpt2.sourceFiles, files)
        XCTAssertNil(try ChatTemplateRecord.record(.chatml, in: ByteTokenizer(), dataHasMessages: true), "the byte tokenizer's export is ChatML's")
    }

    func testASavedPlainTemplateIsRecognisedAndNotRecordedAgain() throws {
        let t = try tokenizer("gpt2", dropTemplate: false)
        XCTAssertNotNil(try ChatTemplateRecord.record(.plain, in: t, dataHasMessages: true))
        let files = t.sourceFiles
        XCTAssertEqual(try ChatTemplate.resolve("auto", tokenizer: t).reason, "recognised in the tokenizer's chat_template")
        XCTAssertNil(try ChatTemplateRecord.record(.plain, in: t, dataHasMessages: true))
        XCTAssertEqual(t.sourceFiles, files)
    }

    /// DPO's pairs: counted per pair, with their messages and longest side.
    func testPairDataReportsItsMessagesAndLengths() throws {
        let path = dir + "/pairs.jsonl"
        let row = #"{"messages": [{"role": "user", "content": "add 2 3 ="}], "chosen": [{"role": "assistant", "content": " 5"}], "rejected": [{"role": "assistant", "content": " 6 or so, I think"}]}"#
        try (row + "\n" + #"{"prompt": "p", "chosen": "a", "rejected": "b"}"# + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let tok = ByteTokenizer()
        let whole = try Dataset(pairsAt: path, tokenizer: tok, maxLength: 64, template: .chatml)
        XCTAssertEqual(whole.report.conversations, 2, "both sides of the first pair")
        XCTAssertEqual(whole.report.promptCompletionRows, 1, "the second pair")
        let rejected = try ChatFormat.conversation([ChatMessage(role: .user, content: "add 2 3 ="), ChatMessage(role: .assistant, content: " 6 or so, I think")],
                                                 source: "x", tokenizer: tok, template: .chatml)
        XCTAssertEqual(whole.report.longest, rejected.ids.count)
        XCTAssertGreaterThan(rejected.ids.count, 40)
        XCTAssertNil(whole.report.lengthNote(setting: 64, isDefault: true, context: 256))
        let dropped = try Dataset(pairsAt: path, tokenizer: tok, maxLength: 40, truncation: .drop, template: .chatml)
        XCTAssertEqual(dropped.report.longest, rejected.ids.count, "the rejected side counts though the pair was dropped")
        let cut = try Dataset(pairsAt: path, tokenizer: tok, maxLength: 40, template: .chatml)
        XCTAssertEqual(cut.report.truncated, 1, "the first pair (its rejected side)")
        XCTAssertEqual(cut.report.lengthNote(setting: 40, isDefault: false, context: 256),
                       "note: 1 of 2 pairs in \(path) are longer than max_length 40 and were cut (right); the longest has \(whole.report.longest) tokens: --max-length \(whole.report.longest) keeps them whole")
    }

    func testPromptFilesWithMessagesAreFound() throws {
        let path = dir + "/prompts.jsonl"
        try #"{"prompt": "add 2 3 ="}"#.write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertFalse(ChatTemplateRecord.hasMessages(path))
        try (#"{"prompt": "add 2 3 ="}"# + "\n" + #"{"messages": [{"role": "user", "content": "add 2 3 ="}]}"#).write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertTrue(ChatTemplateRecord.hasMessages(path))
        XCTAssertFalse(ChatTemplateRecord.hasMessages(dir + "/missing.jsonl"))
    }

    /// Llama 3's `| trim` is Python's `str.strip()` (transformers renders with jinja2): U+200B
    /// stays, U+001C–U+001F and U+3000 go, and a combining mark after a space is kept.
    func testJinjaTrimIsPythonsStrip() {
        XCTAssertEqual(ChatFormat.jinjaTrim("\u{200B}x\u{200B}"), "\u{200B}x\u{200B}")
        XCTAssertEqual(ChatFormat.jinjaTrim("\u{1C}\u{1F} x\ty \u{85}\u{A0}\u{3000}\u{2028}"), "x\ty")
        XCTAssertEqual(ChatFormat.jinjaTrim(" \u{0301}x "), "\u{0301}x")
        XCTAssertEqual(ChatFormat.jinjaTrim(" \n\u{0B}\u{0C} "), "")
        XCTAssertEqual(ChatFormat.jinjaTrim("\u{180E}x\u{FEFF}"), "\u{180E}x\u{FEFF}", "not White_Space since Unicode 6.3 / never")
        XCTAssertEqual(ChatTemplate.llama3.generationPrompt([ChatMessage(role: .user, content: "\u{200B}hi\u{1E}")]),
                       "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n\u{200B}hi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    }

    /// transformers (5.24) reads chat_template.jinja over tokenizer_config.json's chat_template.
    func testTheJinjaFileWinsOverTheConfigsTemplate() throws {
        let copy = dir + "/both"
        try FileManager.default.copyItem(atPath: Self.models + "/llama", toPath: copy)
        var config = try JSONObjectFile.read(copy + "/tokenizer_config.json")
        config["chat_template"] = "{{ messages[0].content }}"
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: copy + "/tokenizer_config.json"))
        let jinja = try String(contentsOfFile: copy + "/chat_template.jinja", encoding: .utf8)
        XCTAssertEqual(try ModelDirectory.loadTokenizer(copy).chatTemplateText, jinja)
        XCTAssertEqual(try ChatTemplate.resolve("auto", tokenizer: ModelDirectory.loadTokenizer(copy)).template, .llama3)
    }
}
