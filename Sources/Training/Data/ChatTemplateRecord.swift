import Foundation
import Models

/// The chat template a run trained with, written into the tokenizer it saves, so that
/// transformers' `apply_chat_template` on the fine-tuned model lays out a conversation as the
/// model learned it (TRL's `setup_chat_format` does the same for ChatML). Before, a model
/// trained with `--chat-template chatml` on a tokenizer that had the ChatML tokens but no
/// template was saved without one, and transformers refused to apply a template to it.
extension ChatTemplate {
    /// The template as Jinja, rendering what `ChatFormat.conversation` tokenizes (and, with
    /// `add_generation_prompt`, `generationPrompt`). `bos`/`eos` are the tokenizer's own token
    /// texts, written in as literals: a tokenizer_config.json without `bos_token` would render
    /// transformers' `bos_token` variable as "None".
    public func jinja(bos: String, eos: String) -> String {
        let literal = JinjaStringLiterals.quote
        switch layout {
        case .chatml:
            guard let defaultSystem else { return HFTokenizerFiles.chatMLTemplate }
            let turn = literal("<|im_start|>system\n" + defaultSystem + "<|im_end|>\n")
            return "{% if messages[0]['role'] != 'system' %}{{ \(turn) }}{% endif %}" + HFTokenizerFiles.chatMLTemplate
        case .llama3:
            if let h = dateHeader {
                // Llama 3.1's system turn, then Meta-Llama-3-8B-Instruct's turns.
                return "{{ \(literal(bos)) }}{% if messages[0]['role'] == 'system' %}{% set system_message = messages[0]['content'] | trim %}"
                    + "{% set messages = messages[1:] %}{% else %}{% set system_message = '' %}{% endif %}"
                    + "{% set date_string = \(literal(h.date)) %}{{ '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
                    + "{{ \(literal("Cutting Knowledge Date: " + h.cutoff + "\n")) }}{{ 'Today Date: ' + date_string + '\\n\\n' }}"
                    + "{{ system_message }}{{ '<|eot_id|>' }}{% for message in messages %}"
                    + "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
                    + "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
            }
            // Meta-Llama-3-8B-Instruct's template, with the BOS as a literal.
            return "{% for message in messages %}{% if loop.index0 == 0 %}{{ \(literal(bos)) }}{% endif %}"
                + "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
                + "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
        case .plain:
            return "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endfor %}"
                + "{% if add_generation_prompt %}{{ 'assistant: ' }}{% else %}{{ \(literal(eos)) }}{% endif %}"
        }
    }
}

public enum ChatTemplateRecord {
    /// The refusal of a chat template named for data without {messages} rows (nil when it has
    /// some): `flag` as the user gave it, `data` the file (or "the data"), `rows` what its rows
    /// are, `drop` what to drop.
    public static func unusedTemplate(_ flag: String, in data: String, rows: String, drop: String, hasMessages: Bool) -> String? {
        hasMessages ? nil : "\(flag) lays out {messages} rows, and \(data) has none (\(rows)): it would have no effect; drop \(drop)"
    }

    /// Whether a prompts file (`--prompts`, `--unlabelled`) has a `messages` row; one its own
    /// reader will refuse counts as none here.
    public static func hasMessages(_ path: String) -> Bool {
        guard let read = try? JSONLReader.read(path: path, skipBadLines: true, rows: .prompts) else { return false }
        return read.records.contains { $0.record.isConversation }
    }

    /// When the training data has `messages` and the tokenizer's own template is not
    /// recognisably `template`, makes `template` the one its files are saved with. Returns a
    /// line for the log, or nil when nothing changed (prompt/completion data, a template that
    /// already is this one — for the byte tokenizer without a recorded one, ChatML).
    public static func record(_ template: ChatTemplate, in tokenizer: Tokenizer, dataHasMessages: Bool) throws -> String? {
        guard dataHasMessages, tokenizer is BPETokenizer || tokenizer is ByteTokenizer else { return nil }
        let had = tokenizer.chatTemplateText
        // A template recognised as this one that writes its turns otherwise (ChatTemplateFidelity)
        // is not what training laid out: the saved tokenizer gets the layout's own.
        let differs = had.map { ChatTemplate.differences(from: $0, layout: template.layout, bos: tokenizer.templateBOS) } ?? []
        if let had, ChatTemplate.recognise(had) == template, differs.isEmpty { return nil }
        let byteOwn = tokenizer is ByteTokenizer && had == nil
        if byteOwn && template == .chatml { return nil }
        let bos = tokenizer.bosId ?? tokenizer.specialTokenId("<|begin_of_text|>")
        try tokenizer.recordChatTemplate(template.jinja(bos: bos.map { tokenizer.decode([$0]) } ?? "", eos: tokenizer.decode([tokenizer.eosId])))
        let before: String
        if byteOwn {
            before = "replacing ChatML, sft-dist's byte tokenizer's own"
        } else if let had, let own = ChatTemplate.recognise(had), own.layout == template.layout {
            before = !differs.isEmpty && own == template ? "replacing its own, which writes its turns otherwise: \(differs.joined(separator: "; "))"
                : own.thinking != template.thinking ? "replacing its own, which writes Qwen3's <think> blocks"
                : own.dateHeader != nil ? "replacing its own, which opens with a dated system turn"
                : own.defaultSystem == nil ? "replacing its own, which has no default system message"
                : "replacing its own, which puts a default system message first"
        } else { before = had == nil ? "it had none" : "replacing its own, which is not \(template.rawValue)" }
        return "chat template: the saved tokenizer records \(template.rawValue), the template the messages are trained with (\(before))"
    }
}
