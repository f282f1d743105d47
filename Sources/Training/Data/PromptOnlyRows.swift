import Foundation
import Models

/// Rows that are only a prompt: `{"prompt"}` with no completion, or messages that end before an
/// assistant turn. `generate --prompts`, `--prompts FILE` and grpo's `--data` / `--heldout` read
/// them — TRL's GRPO datasets are prompt-only, its GRPOTrainer samples the answers — as the
/// prompt a generation continues, tokenized exactly as a training row's prompt part is.
extension ChatFormat {
    /// The prompt tokens of `record` (a conversation's up to the empty assistant turn's
    /// header, where the answer would start) and its reference answer: the completion or a final
    /// assistant turn when the row has one (`--prompts` keeps it for the scorers), else nil.
    public static func prompt(of record: SourcedRecord, tokenizer: any Tokenizer,
                              template: ChatTemplate) throws -> (ids: [Int32], reference: String?) {
        switch record.record {
        case .promptCompletion(let prompt, let completion):
            let e = promptCompletion(prompt: prompt, completion: "", source: record.source, tokenizer: tokenizer)
            return (Array(e.ids[0..<e.promptLength]), completion.isEmpty ? nil : completion)
        case .messages, .promptedConversation:
            let (turns, reference) = try promptTurns(record.record.turns!, source: record.source)
            let e = try conversation(turns + [ChatMessage(role: .assistant, content: "")], source: record.source,
                                     tokenizer: tokenizer, template: template)
            return (Array(e.ids[0..<e.promptLength]), reference)
        case .text:   // JSONLReader refuses them among prompts
            throw DataError(#"\#(record.source): a {"text"} row has no prompt"#)
        }
    }

    /// A prompt-only row as an `Example` with no trained token: `ids` the prompt,
    /// `promptLength` all of them, no answer (`Example.isPromptOnly`). Rollouts start from it;
    /// the NLL and the greedy answers' exact match pass it over (nothing to compare with).
    public static func promptOnly(_ record: SourcedRecord, tokenizer: any Tokenizer, template: ChatTemplate) throws -> Example {
        let ids = try prompt(of: record, tokenizer: tokenizer, template: template).ids
        return Example(ids: ids, lossMask: [UInt8](repeating: 0, count: ids.count), promptLength: ids.count,
                       answer: nil, source: record.source)
    }

    /// The turns a `{messages}` prompt row prompts with, and its reference: a final assistant
    /// turn. A row that is only that turn has nothing to prompt with — transformers'
    /// `apply_chat_template` refuses the empty conversation; here the template's default system
    /// turn alone was the prompt (a hostile review) — and is refused.
    public static func promptTurns(_ messages: [ChatMessage], source: String) throws -> (turns: [ChatMessage], reference: String?) {
        guard messages.last?.role == .assistant else { return (messages, nil) }
        if messages.count == 1 {
            throw DataError("\(source): the conversation is one assistant turn, the reference; a prompt needs a turn before it")
        }
        return (Array(messages.dropLast()), messages.last!.content)
    }
}

extension Example {
    /// A row that is only a prompt (`ChatFormat.promptOnly`): no reference and no trained
    /// token. A `{"text"}` row also has no reference, but its tokens are trained.
    public var isPromptOnly: Bool { answer == nil && promptLength == ids.count }
    /// A `{"text"}` row: no reference, every token trained, nothing to generate from.
    public var isText: Bool { answer == nil && !isPromptOnly }
    /// Whether a generation can start from it: a prompt row, with or without a reference
    /// (a `{"text"}` row has no prompt; a prompt/completion row with an empty prompt, none).
    public var hasPrompt: Bool { promptLength > 0 && (answer != nil || isPromptOnly) }
}
