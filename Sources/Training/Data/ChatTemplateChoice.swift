import Foundation
import Models

extension ChatTemplate {
    /// The value of `chat_template` / `--chat-template` that picks the template from the model.
    public static let auto = "auto"
    /// Every accepted name: the templates and "auto".
    public static var names: [String] { [auto] + allCases.map(\.rawValue) }

    /// Recognises a Jinja chat template from tokenizer_config.json by its control tokens: ChatML
    /// (`<|im_start|>`, Qwen2 and many SFT models) or Llama-3 (`<|start_header_id|>` … `<|eot_id|>`).
    /// nil for anything else: sft-dist does not run Jinja, it reproduces known templates (and
    /// knows which of their tokens are trained).
    public static func recognise(_ jinja: String) -> ChatTemplate? {
        if jinja.contains("<|im_start|>") && jinja.contains("<|im_end|>") {
            return ChatTemplate(.chatml, defaultSystem: chatMLDefaultSystem(in: jinja), thinking: writesQwen3Thinking(jinja))
        }
        if jinja.contains("<|start_header_id|>") && jinja.contains("<|eot_id|>") {
            return ChatTemplate(.llama3, dateHeader: Llama3DateHeader(in: jinja))
        }
        if jinja.hasPrefix(plainPrefix) && jinja.contains("{{ 'assistant: ' }}") { return .plain }  // as sft-dist records it
        return nil
    }

    /// Qwen3's template: the reasoning block it opens before an assistant reply after the last
    /// user query (`'\n<think>\n' + reasoning_content`, gated on `ns.last_query_index`), which
    /// `ThinkingReplies` reproduces. Other templates that mention `<think>` (QwQ's, which opens
    /// one in the generation prompt) are not it.
    static func writesQwen3Thinking(_ jinja: String) -> Bool {
        jinja.contains(#"'\n<think>\n' + reasoning_content"#) && jinja.contains("loop.index0 > ns.last_query_index")
            && jinja.contains("enable_thinking")
    }

    /// How `plain.jinja` begins (`ChatTemplateRecord.swift`): what marks a saved plain template.
    static let plainPrefix = "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endfor %}"

    /// `name` as given (chatml, plain, llama3) or, for "auto", the tokenizer's own template when it
    /// is recognisably one of ours; without one, chatml when the vocabulary has the ChatML specials
    /// (the byte tokenizer does), else plain. Returns the choice and a phrase saying why, for the log.
    /// `label` names the setting in the error for an unknown name: the recipe key for `train`,
    /// `--chat-template` for the subcommands.
    public static func resolve(_ name: String, tokenizer: any Tokenizer, label: String = "chat_template") throws -> (template: ChatTemplate, reason: String) {
        if let t = ChatTemplate(rawValue: name) { return (t, "as requested") }
        guard name == auto else {
            throw DataError("\(label) must be one of \(names.joined(separator: ", ")) (got \"\(name)\")")
        }
        if let text = tokenizer.chatTemplateText {
            if let t = recognise(text) { return (t, "recognised in the tokenizer's chat_template" + t.whatWasRead(from: text, bos: tokenizer.templateBOS)) }
            return (.plain, "the tokenizer's chat_template is not chatml or llama3; pass --chat-template to choose")
        }
        if tokenizer.specialTokenId("<|im_start|>") != nil && tokenizer.specialTokenId("<|im_end|>") != nil {
            // The byte tokenizer is read from sft_dist_tokenizer.json even where an exported
            // tokenizer_config.json beside it holds a ChatML chat_template: say which it is.
            if tokenizer is ByteTokenizer { return (.chatml, "sft-dist's byte tokenizer, whose template is ChatML") }
            return (.chatml, "the tokenizer has ChatML tokens and no chat_template")
        }
        return (.plain, "the tokenizer has no chat_template")
    }
}

extension ChatTemplate {
    /// The conversation as text ending where the assistant's reply starts (HF's
    /// `add_generation_prompt=True`), for `generate --prompts` with {messages} lines. Encoded with
    /// special-token parsing, so the template's control tokens become their ids.
    public func generationPrompt(_ turns: [ChatMessage]) -> String {
        let turns = laidOut(turns)
        switch layout {
        case .chatml:
            let lastQuery = ThinkingReplies.lastQueryIndex(turns)
            return turns.indices.map { i in
                "<|im_start|>\(turns[i].role.rawValue)\n\(chatMLContent(turns, i, lastQuery: lastQuery))<|im_end|>\n"
            }.joined() + "<|im_start|>assistant\n"
        case .llama3:
            return "<|begin_of_text|>" + turns.indices.map { i in
                "<|start_header_id|>\(turns[i].role.rawValue)<|end_header_id|>\n\n\(llama3Content(turns, i))<|eot_id|>"
            }.joined() + "<|start_header_id|>assistant<|end_header_id|>\n\n"
        case .plain:
            return turns.map { "\($0.role.rawValue): \($0.content)\n" }.joined() + "assistant: "
        }
    }
}
