import Foundation
import XCTest
import TestSupport
@testable import Models
@testable import Training

/// Qwen2's, Qwen2.5's and SmolLM2's chat templates put a default system message before a
/// conversation that has none; sft-dist finds it in the template (`ChatTemplateDefaults.swift`)
/// and lays conversations out as transformers does. The expected ids are transformers 5.24's
/// `apply_chat_template` (Fixtures/hf/expected/chat-templates.json, from
/// `scripts/make-hf-fixtures chat-templates`).
final class ChatTemplateDefaultsTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../ModelsTests/Fixtures/hf").standardized.path

    struct Case: Decodable {
        struct Message: Decodable { let role: String, content: String, reasoning_content: String? }
        let tokenizer: String, template: String, messages: [Message], ids: [Int32], prompt_ids: [Int32]
        var turns: [ChatMessage] {
            messages.map { ChatMessage(role: ChatMessage.Role(rawValue: $0.role)!, content: $0.content, reasoning: $0.reasoning_content) }
        }
    }
    struct Fixture: Decodable { let templates: [String: String], cases: [Case] }

    func fixture() throws -> Fixture {
        try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: URL(fileURLWithPath: Self.root + "/expected/chat-templates.json")))
    }

    func testDefaultSystemMessagesAreReadFromTheTemplates() throws {
        let t = try fixture().templates
        XCTAssertEqual(ChatTemplate.recognise(t["qwen2"]!), ChatTemplate(.chatml, defaultSystem: "You are a helpful assistant."))
        XCTAssertEqual(ChatTemplate.recognise(t["qwen2.5"]!),
                       ChatTemplate(.chatml, defaultSystem: "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."))
        XCTAssertEqual(ChatTemplate.recognise(t["smollm2"]!),
                       ChatTemplate(.chatml, defaultSystem: "You are a helpful AI assistant named SmolLM, trained by Hugging Face"))
        XCTAssertEqual(ChatTemplate.recognise(t["chatml"]!), .chatml)
        let header = Llama3DateHeader(cutoff: "December 2023", date: "26 Jul 2024")
        XCTAssertEqual(ChatTemplate.recognise(t["llama3.1"]!), ChatTemplate(.llama3, dateHeader: header))
        XCTAssertEqual(ChatTemplate.recognise(t["llama3.2-date"]!), ChatTemplate(.llama3, dateHeader: header), "strftime_now's fallback")
        XCTAssertEqual(ChatTemplate.recognise(t["llama3"]!), .llama3)
        XCTAssertEqual(ChatTemplate.recognise(t["qwen3"]!), ChatTemplate(.chatml, thinking: true), "Qwen3: no default system message, <think> blocks")
    }

    /// Every conversation — with and without a system message, several turns, a system message
    /// later on — gives transformers' ids, and its generation prompt transformers' prompt ids.
    func testConversationsGiveTransformersIds() throws {
        let f = try fixture()
        let toks = try ["qwen2", "llama3", "qwen3"].reduce(into: [String: Tokenizer]()) {
            $0[$1] = try ModelDirectory.loadTokenizer(Self.root + "/tokenizers/" + $1)
        }
        XCTAssertEqual(Set(f.cases.map(\.template)).count, 8)
        for c in f.cases {
            let tok = try XCTUnwrap(toks[c.tokenizer])
            let template = try XCTUnwrap(ChatTemplate.recognise(f.templates[c.template]!))
            let e = try ChatFormat.conversation(c.turns, source: c.template, tokenizer: tok, template: template)
            XCTAssertEqual(e.ids, c.ids, "\(c.template): \(c.messages.map(\.role))")
            XCTAssertEqual(Array(e.ids.prefix(e.promptLength)), c.prompt_ids, "\(c.template): the prompt before the last reply")
            XCTAssertEqual(tok.encode(template.generationPrompt(Array(c.turns.dropLast()))), c.prompt_ids, "\(c.template): generate's prompt")
            // Only assistant contents and their turn ends are trained: never a default system message or header.
            let trained = tok.decode(zip(e.ids, e.lossMask).filter { $0.1 != 0 }.map(\.0))
            XCTAssertFalse(trained.contains("assistant") || trained.contains("You are") || trained.contains("Date"), trained)
        }
    }

    /// Jinja's string literals as Jinja reads them: escapes, both quotes, the strings of tags only.
    func testJinjaStringLiterals() {
        XCTAssertEqual(JinjaStringLiterals.values(in: #"{{ 'a\nb' + "c\"d" }}{% if x == 'e\'f' %}{% endif %}"#), ["a\nb", "c\"d", "e'f"])
        XCTAssertEqual(JinjaStringLiterals.values(in: #"don't {# it's #}{{ 'x' }} 'y'{% raw %}{{ 'z' }}{% endraw %}"#), ["x"], "prose, comments and raw blocks hold no strings")
        XCTAssertEqual(JinjaStringLiterals.values(in: #"{{ '\x41\u00e9\101\q' }}"#), ["Aé" + "A" + #"\q"#], "hex, unicode, octal; an unknown escape kept")
        XCTAssertEqual(JinjaStringLiterals.values(in: #"{{ '\N{BULLET}' }}"#), [], "an escape it cannot read: no value")
        for s in ["it's", #"a\b"#, "two\nlines", "\"q\""] {
            XCTAssertEqual(JinjaStringLiterals.values(in: "{{ \(JinjaStringLiterals.quote(s)) }}"), [s], s)
        }
    }

    /// A system turn is a default only where the template writes it when the first message is not
    /// a system one; under any other condition — tools given, never, always, no system message
    /// anywhere — it is not guessed at (transformers wrote no system turn, or another one, there).
    func testTemplatesWithoutOneDefaultHaveNone() {
        let loop = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
        let turn = "'<|im_start|>system\\nX<|im_end|>\\n'"
        for (prefix, why) in [
            ("{% if a %}{{ '<|im_start|>system\\nA<|im_end|>\\n' }}{% else %}{{ '<|im_start|>system\\nB<|im_end|>\\n' }}{% endif %}", "two, neither a default"),
            ("{{ '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}", "built from the messages"),
            ("<|im_start|>system\nprose<|im_end|>\n", "text outside tags"),
            ("{% if tools %}{{ \(turn) }}{% endif %}", "only with tools"),
            ("{% set unused = \(turn) %}", "assigned, not written"),
            ("{% if false %}{{ \(turn) }}{% endif %}", "never"),
            ("{% raw %}{{ \(turn) }}{% endraw %}", "raw text"),
            ("{# {{ \(turn) }} #}", "a comment"),
            ("{{ \(turn) }}", "always, before the conversation's own"),
            ("{% if not (messages|selectattr('role','equalto','system')|list) %}{{ \(turn) }}{% endif %}", "no system message anywhere"),
            ("{% if messages[0]['role'] == 'system' %}{{ \(turn) }}{% endif %}", "the system branch, not the default"),
            ("{% if messages[0]['role'] == 'system' %}{% elif x %}{% else %}{{ \(turn) }}{% endif %}", "after an elif"),
            // Blocks sft-dist must follow to know the branch (a second review).
            ("{% if tools %}{% with x = 1 %}{% endwith %}{% if messages[0]['role'] != 'system' %}{{ \(turn) }}{% endif %}{% endif %}", "with"),
            ("{% if tools %}{% autoescape true %}{% endautoescape %}{% if messages[0]['role'] != 'system' %}{{ \(turn) }}{% endif %}{% endif %}", "autoescape"),
            ("{% if tools %}{% if(tools|length > 5) %}x{% endif %}{% if messages[0]['role'] != 'system' %}{{ \(turn) }}{% endif %}{% endif %}", "if("),
            ("{% if tools %}{% set y | replace('=', '') %}foo{% endset %}{% if messages[0]['role'] != 'system' %}{{ \(turn) }}{% endif %}{% endif %}", "a block set"),
            ("{% if tools %}{{ {'k': {'v': 1}} ~ '{% endif %}' }}{% if messages[0]['role'] != 'system' %}{{ \(turn) }}{% endif %}{% endif %}", "a dict's }}"),
            ("{% raw %}{% endraw_x %}{% if messages[0]['role'] != 'system' %}{{ \(turn) }}{% endif %}{% endraw %}", "endraw_x is not endraw"),
            ("{% raw %}A{%-\n   endraw %}{% if tools %}{% raw %}B{% endraw %}{% if messages[0]['role'] != 'system' %}{{ \(turn) }}{% endif %}{% endif %}", "a spaced endraw"),
            ("{% for message in messages %}{% else %}{% if messages[0]['role'] != 'system' %}{{ \(turn) }}{% endif %}{% endfor %}", "the loop's else"),
            ("{% for message in messages %}{% if messages[0]['role'] != 'system' %}{{ \(turn) }}{% endif %}{% endfor %}", "before every message"),
            ("{% if messages[0]['role'] != 'system' %}{{ \(turn) }}", "a block left open"),
            ("{% endif %}{% if messages[0]['role'] != 'system' %}{{ \(turn) }}{% endif %}", "an end with nothing open"),
            ("{% set messages = [{'role': 'system', 'content': 'x'}] + messages %}{% if messages[0]['role'] != 'system' %}{{ \(turn) }}{% endif %}", "messages reassigned"),
        ] {
            XCTAssertEqual(ChatTemplate.recognise(prefix + loop), .chatml, why)
        }
        // The default branch, written with double quotes and `.role`, is one.
        XCTAssertEqual(ChatTemplate.recognise("{%- if messages[0].role != \"system\" -%}{{- \"<|im_start|>system\\nY<|im_end|>\\n\" -}}{%- endif %}" + loop),
                       ChatTemplate(.chatml, defaultSystem: "Y"))
    }

    /// Malformed templates are not read, quickly and without a trap: a `§` where a literal was
    /// expected, nesting 20,000 deep (each tag had kept its own copy of the open blocks: 18 GB).
    func testMalformedTemplatesAreNotReadAndDoNotTrap() throws {
        XCTAssertEqual(ChatTemplate.recognise("{{ § }}{{- § -}}<|im_start|><|im_end|>"), .chatml)
        XCTAssertEqual(ChatTemplate.recognise("{% if messages[0]['role'] != 'system' %}{{ § }}{% endif %}<|im_start|><|im_end|>"), .chatml,
                       "a § in the default branch")
        let tok = try BPETokenizer(path: Self.root + "/tokenizers/qwen2/tokenizer.json")
        try tok.recordChatTemplate("{{ § }}<|im_start|><|im_end|>")
        XCTAssertEqual(try ChatTemplate.resolve("auto", tokenizer: tok).template, .chatml, "the log's account reads every tag")
        XCTAssertNil(Llama3DateHeader(in: "{{ § }}{{ § }}{{ § }}{{ § }}{{ § }}"))
        let deep = String(repeating: "{% if false %}", count: 20_000) + "x" + String(repeating: "{% endif %}", count: 20_000)
        let started = Date()
        XCTAssertNil(JinjaTag.scan(deep), "deeper than any chat template")
        XCTAssertLessThan(Date().timeIntervalSince(started), 5)
        XCTAssertNil(JinjaTag.scan("{{ 'open"), "a tag left open")
        XCTAssertNotNil(JinjaTag.scan(String(repeating: "{% if a %}", count: 64) + String(repeating: "{% endif %}", count: 64)))
    }

    /// The dated header is read only where the template writes it for every conversation, laid
    /// out as Llama 3.1's; the date only from a literal assignment, not from a comment.
    func testLlamaHeadersThatAreNotLlama31sAreNotRead() throws {
        let llama31 = try XCTUnwrap(try fixture().templates["llama3.1"])
        XCTAssertNotNil(Llama3DateHeader(in: llama31))
        let systemOnly = llama31.replacingOccurrences(of: "{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}",
                                                      with: "{% if messages[0]['role'] == 'system' %}{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}{% endif %}")
        XCTAssertNotEqual(systemOnly, llama31)
        XCTAssertNil(Llama3DateHeader(in: systemOnly), "a header only with a system message")
        let oneNewline = llama31.replacingOccurrences(of: "{{- \"Today Date: \" + date_string + \"\\n\\n\" }}", with: "{{- \"Today Date: \" + date_string + \"\\n\" }}")
        XCTAssertNotEqual(oneNewline, llama31)
        XCTAssertNil(Llama3DateHeader(in: oneNewline), "another layout")
        XCTAssertNil(Llama3DateHeader(in: llama31 + "{% if x %}{% set date_string = \"01 Jan 2025\" %}{% endif %}"), "two dates")
        for (from, to, why) in [
            ("{{- system_message }}\n{{- \"<|eot_id|>\" }}", "{{- \"<|eot_id|>\" }}{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' + system_message + '<|eot_id|>' }}", "the system message in its own turn"),
            ("{%- set system_message = messages[0]['content']|trim %}", "{%- set system_message = messages[0]['content'] %}", "not trimmed"),
            ("{{- \"Cutting Knowledge Date: December 2023\\n\" }}\n{{- \"Today Date: \" + date_string + \"\\n\\n\" }}",
             "{{- \"Today Date: \" + date_string + \"\\n\\n\" }}{{- \"Cutting Knowledge Date: December 2023\\n\" }}", "another order"),
            ("{{- \"Today Date: \" + date_string + \"\\n\\n\" }}", "{{- \"Today Date: \" + date_string + \"\\n\\n\" }}{{- \"Model: X\\n\" }}", "another line"),
            ("{%- if not tools is defined %}", "{%- set date_string = date_string | upper %}{%- if not tools is defined %}", "the date changed after"),
            ("{%- if not tools is defined %}", "{%- set date_string = \"01 Jan \" ~ \"2030\" %}{%- if not tools is defined %}", "the date built"),
        ] {
            let changed = llama31.replacingOccurrences(of: from, with: to)
            XCTAssertNotEqual(changed, llama31, why)
            XCTAssertNil(Llama3DateHeader(in: changed), why)
        }
        XCTAssertNotNil(Llama3DateHeader(in: llama31 + "{#- e.g. {% set date_string = \"01 Jan 2025\" %} #}"), "a comment is not an assignment")
        XCTAssertEqual(JinjaStringLiterals.assignments(to: "date_string", in: #"{% set date_string = "a" | trim %}{% set date_string = 'b' %}"#), ["b"])
    }

    /// What a recognised template writes that the layouts do not is said in the log's reason
    /// (among the notes: `ChatTemplateFidelity` may say more about these minimal templates).
    func testWhatIsNotReproducedIsSaid() throws {
        func Templated(_ jinja: String) throws -> BPETokenizer {
            let t = try BPETokenizer(path: Self.root + "/tokenizers/qwen2/tokenizer.json")
            try t.recordChatTemplate(jinja)
            return t
        }
        let otherThink = "{{ '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content + '\\n</think>\\n\\n' + content + '<|im_end|>' }}"
        XCTAssertTrue(try ChatTemplate.resolve("auto", tokenizer: try Templated(otherThink)).reason.contains(
            "; note: it also writes <think> blocks into assistant turns in a way sft-dist does not follow (not Qwen3's): replies are trained and generated without them"))
        let always = "{{ '<|im_start|>system\\nAlways.<|im_end|>\\n' }}{% for m in messages %}{{ '<|im_start|>' + m.role }}{% endfor %}"
        XCTAssertTrue(try ChatTemplate.resolve("auto", tokenizer: try Templated(always)).reason.contains(
            "; note: it writes a fixed system turn under a condition sft-dist does not read, so conversations are laid out without it"))
        let unread = "{{ '<|start_header_id|>system<|end_header_id|>\\n\\n' + 'Cutting Knowledge Date: ' + cutoff + '\\n' }}<|eot_id|>"
        let r = try ChatTemplate.resolve("auto", tokenizer: try Templated(unread))
        XCTAssertEqual(r.template, .llama3)
        XCTAssertTrue(r.reason.contains("; note: its dated system turn could not be read, so conversations are laid out without it"), r.reason)
    }

    /// Llama 3.1's header: the template sft-dist writes with it reads back as the same, and its
    /// text starts the system turn, the conversation's own system message trimmed after it.
    func testTheLlamaHeaderIsSavedAndLaidOut() {
        let t = ChatTemplate(.llama3, dateHeader: Llama3DateHeader(cutoff: "March 2031", date: "01 Jan 2032"))
        XCTAssertEqual(ChatTemplate.recognise(t.jinja(bos: "<|begin_of_text|>", eos: "<|eot_id|>")), t)
        XCTAssertEqual(t.laidOut([ChatMessage(role: .system, content: "  Be brief. \n"), ChatMessage(role: .user, content: "hi")]),
                       [ChatMessage(role: .system, content: "Cutting Knowledge Date: March 2031\nToday Date: 01 Jan 2032\n\nBe brief."),
                        ChatMessage(role: .user, content: "hi")])
        XCTAssertEqual(t.laidOut([ChatMessage(role: .user, content: "hi")]).first?.content, "Cutting Knowledge Date: March 2031\nToday Date: 01 Jan 2032\n\n")
        XCTAssertEqual(JinjaStringLiterals.assignments(to: "date_string", in: #"{%- set date_string = "a" %}{% set date_string = strftime_now("%d") %}{% set other = 'b' %}"#), ["a"])
    }

    /// The template a run saves, with a default system message, reads back as the same one, and
    /// `--chat-template chatml` (no default) on such a tokenizer replaces its template, saying why.
    func testTheDefaultIsSavedAndAnExplicitChatMLReplacesIt() throws {
        let withDefault = ChatTemplate(.chatml, defaultSystem: "Be brief, it's 'late'.\nReally.")
        XCTAssertEqual(ChatTemplate.recognise(withDefault.jinja(bos: "", eos: "<|im_end|>")), withDefault)
        let dir = try makeTemporaryDirectory("sft-dist-chat-defaults")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: Self.root + "/tokenizers/qwen2", toPath: dir + "/qwen2")
        let tok = try XCTUnwrap(ModelDirectory.loadTokenizer(dir + "/qwen2") as? BPETokenizer)
        let auto = try ChatTemplate.resolve("auto", tokenizer: tok)
        XCTAssertEqual(auto.template.defaultSystem, "You are a helpful assistant.")
        XCTAssertEqual(auto.reason, #"recognised in the tokenizer's chat_template, with its default system message "You are a helpful assistant." for conversations without one"#)
        XCTAssertNil(try ChatTemplateRecord.record(auto.template, in: tok, dataHasMessages: true), "its own template is kept")
        let line = try ChatTemplateRecord.record(.chatml, in: tok, dataHasMessages: true)
        XCTAssertEqual(line, "chat template: the saved tokenizer records chatml, the template the messages are trained with (replacing its own, which puts a default system message first)")
        XCTAssertEqual(tok.chatTemplateText, HFTokenizerFiles.chatMLTemplate)
    }

    /// `--chat-template chatml` on a Qwen3 tokenizer: the log names what differs, its <think>
    /// blocks (it said "which has no default system message", true but not the reason).
    func testAnExplicitChatMLOverQwen3SaysItDropsTheThinkBlocks() throws {
        let dir = try makeTemporaryDirectory("sft-dist-chat-qwen3")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: Self.root + "/tokenizers/qwen3", toPath: dir + "/qwen3")
        let tok = try XCTUnwrap(ModelDirectory.loadTokenizer(dir + "/qwen3") as? BPETokenizer)
        XCTAssertTrue(try ChatTemplate.resolve("auto", tokenizer: tok).template.thinking)
        let line = try ChatTemplateRecord.record(.chatml, in: tok, dataHasMessages: true)
        XCTAssertEqual(line, "chat template: the saved tokenizer records chatml, the template the messages are trained with (replacing its own, which writes Qwen3's <think> blocks)")
    }
}
