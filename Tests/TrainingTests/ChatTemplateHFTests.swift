import Foundation
import XCTest
@testable import Models
@testable import Training

/// The built-in chat templates give exactly the ids of transformers' `apply_chat_template` with
/// the model's own Jinja template (Fixtures/hf/expected/chat.json, from scripts/make-hf-fixtures),
/// and train only assistant turns.
final class ChatTemplateHFTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../ModelsTests/Fixtures/hf").standardized.path

    func tokenizer(_ kind: String) throws -> BPETokenizer {
        try BPETokenizer(path: Self.root + "/tokenizers/\(kind)/tokenizer.json")
    }

    func expected(_ kind: String) throws -> (messages: [ChatMessage], ids: [Int32]) {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.root + "/expected/chat.json"))
        let j = (try JSONSerialization.jsonObject(with: data) as! [String: [String: Any]])[kind]!
        let messages = (j["messages"] as! [[String: String]]).map {
            ChatMessage(role: ChatMessage.Role(rawValue: $0["role"]!)!, content: $0["content"]!)
        }
        return (messages, (j["ids"] as! [Int]).map(Int32.init))
    }

    func check(_ kind: String, template: ChatTemplate, turnEnd: String) throws {
        let tok = try tokenizer(kind)
        XCTAssertEqual(try ChatTemplate.resolve("auto", tokenizer: tok).template, template, "recognised from tokenizer_config")
        let (messages, ids) = try expected(kind)
        let e = try ChatFormat.conversation(messages, source: "chat.json", tokenizer: tok, template: template)
        XCTAssertEqual(e.ids, ids, "\(kind): ids differ from apply_chat_template")
        // Trained tokens: exactly the assistant contents and their turn-end tokens.
        let trained = zip(e.ids, e.lossMask).filter { $0.1 != 0 }.map(\.0)
        let end = tok.specialTokenId(turnEnd)!
        XCTAssertEqual(trained.filter { $0 == end }.count, 2, "two assistant turns end in \(turnEnd)")
        let text = tok.decode(trained)
        XCTAssertTrue(text.contains("42") && text.contains("84"), text)
        XCTAssertFalse(text.contains("12 + 30") || text.contains("terse") || text.contains("twice"), text)
        // Generation starts right after the last assistant header.
        let rest = tok.decode(Array(e.ids[e.promptLength...])).trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(rest.hasPrefix("84"), rest)
    }

    func testChatMLMatchesQwen2Template() throws {
        try check("qwen2", template: ChatTemplate(.chatml, defaultSystem: "You are a helpful assistant."), turnEnd: "<|im_end|>")
    }
    func testLlama3MatchesLlama3Template() throws { try check("llama3", template: .llama3, turnEnd: "<|eot_id|>") }

    /// `generate`'s text prompt for {messages} encodes to the ids the training template puts
    /// before the assistant's reply (which equal apply_chat_template's, above).
    func testGenerationPromptMatchesTrainingPrefix() throws {
        for (kind, template) in [("qwen2", ChatTemplate.chatml), ("llama3", .llama3)] {
            let tok = try tokenizer(kind)
            let (messages, _) = try expected(kind)
            let e = try ChatFormat.conversation(messages, source: "chat.json", tokenizer: tok, template: template)
            let prompt = tok.encode(template.generationPrompt(Array(messages.dropLast())))
            XCTAssertEqual(prompt, Array(e.ids.prefix(e.promptLength)), kind)
        }
    }

    func testResolve() throws {
        let byte = ByteTokenizer()
        XCTAssertEqual(try ChatTemplate.resolve("auto", tokenizer: byte).template, .chatml)
        XCTAssertEqual(try ChatTemplate.resolve("auto", tokenizer: byte).reason, "sft-dist's byte tokenizer, whose template is ChatML",
                       "the log must not claim the model directory has no chat_template (an exported one has)")
        XCTAssertEqual(try ChatTemplate.resolve("plain", tokenizer: try tokenizer("qwen2")).template, .plain)
        XCTAssertEqual(try ChatTemplate.resolve("auto", tokenizer: try tokenizer("gpt2")).template, .plain, "no template, no ChatML tokens")
        XCTAssertThrowsError(try ChatTemplate.resolve("vicuna", tokenizer: byte)) {
            XCTAssertTrue("\($0)".contains("must be one of auto, chatml, plain, llama3"), "\($0)")
        }
        XCTAssertNil(ChatTemplate.recognise("{{ '[INST] ' + message['content'] + ' [/INST]' }}"))
    }

    /// Llama-3 prompt/completion data starts with BOS, as the tokenizer's post-processor would add.
    func testPromptCompletionGetsBOSWhenTheTokenizerAddsOne() throws {
        let l = try tokenizer("llama3"), q = try tokenizer("qwen2")
        let a = ChatFormat.promptCompletion(prompt: "add 1 2 =", completion: " 3", source: "x", tokenizer: l)
        XCTAssertEqual(a.ids.first, l.bosId)
        XCTAssertEqual(a.lossMask.first, 0)
        XCTAssertEqual(a.ids.last, l.eosId)
        let b = ChatFormat.promptCompletion(prompt: "add 1 2 =", completion: " 3", source: "x", tokenizer: q)
        XCTAssertEqual(Array(b.ids.prefix(b.promptLength)), q.encodePlain("add 1 2 ="))
    }

    /// A template whose control tokens the vocabulary lacks is a clear error, not a crash.
    func testLlama3TemplateNeedsItsTokens() throws {
        let (messages, _) = try expected("llama3")
        XCTAssertThrowsError(try ChatFormat.conversation(messages, source: "d.jsonl:3", tokenizer: try tokenizer("qwen2"), template: .llama3)) {
            XCTAssertTrue("\($0)".contains("d.jsonl:3: the tokenizer has no <|start_header_id|> token"), "\($0)")
        }
    }
}
