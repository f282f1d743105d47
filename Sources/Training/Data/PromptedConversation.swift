import Foundation
import Models

/// TRL's conversational prompt/completion rows, `{"prompt": [turns], "completion": [turn]}`.
///
/// TRL's SFTTrainer tokenizes them as `apply_chat_template(prompt, add_generation_prompt=True)`
/// and `apply_chat_template(prompt + completion)`, and its completion mask
/// (`completion_only_loss`, on by default for prompt/completion rows) trains every token after
/// the first: the answer, its end-of-turn token and whatever the template writes after it (the
/// ChatML line break). `assistant_only_loss` narrows that to the assistant turns' own tokens.
/// Here both switches act on these rows in the same way (`LossScope.apply`): both on, the
/// defaults, train the completion's content and end token; `--no-assistant-only-loss` gives
/// TRL's default mask; `--no-completion-only-loss` trains every assistant turn, the prompt's too.
///
/// Read as prompts (`generate --prompts`, rollout and self-training prompts) such a row is its
/// conversation, `.messages(prompt + completion)`, whose final assistant turn is the reference.
extension DataRecord {
    /// The whole conversation of a `{messages}` or conversational prompt/completion row.
    public var turns: [ChatMessage]? {
        switch self {
        case .messages(let messages): return messages
        case .promptedConversation(let prompt, let completion): return prompt + [completion]
        case .promptCompletion, .text: return nil
        }
    }

    /// A row the chat template lays out.
    public var isConversation: Bool { turns != nil }
}

extension JSONLReader {
    /// The row when its "prompt" or "completion" is a list of turns, else nil (text fields).
    static func promptedConversation(from fields: [String: Any], rows: Rows) throws -> DataRecord? {
        let prompt = fields["prompt"], completion = fields["completion"]
        guard prompt is [Any] || completion is [Any] else { return nil }
        guard prompt is [Any] else {
            throw LineProblem(prompt == nil ? #"missing field "prompt": a conversational "completion" (a list of turns) follows a conversational "prompt""#
                              : #"field "prompt" is a text and "completion" a list of turns: give both as turns (TRL's conversational form) or both as text"#)
        }
        let turns = try named("prompt", try chatMessages(from: prompt!, rows: .prompts))
        if turns.last?.role == .assistant {
            throw LineProblem(#""prompt" ends with an assistant turn; it holds the turns before the completion"#)
        }
        guard let completion, !(completion is NSNull) else {
            if rows == .examples { throw LineProblem(#"missing field "completion" (a list of one assistant turn, after a conversational "prompt")"#) }
            return .messages(turns)   // a prompt-only row, as a conversation that ends before its answer
        }
        guard let list = completion as? [Any] else {
            throw LineProblem(#"field "prompt" is a list of turns and "completion" is not: give the completion as [{"role": "assistant", "content": ...}]"#)
        }
        guard list.count == 1, (list.first as? [String: Any])?["role"] as? String == "assistant" else {
            throw LineProblem(#""completion" must be one assistant turn, [{"role": "assistant", "content": ...}]"#)
        }
        if rows == .prompts {
            // A prompt's reference, which may be empty, as a text row's "completion" may.
            let answer = try named("completion", try chatMessages(from: list, rows: .prompts))[0]
            return .messages(answer.content.isEmpty ? turns : turns + [answer])
        }
        let answer = try named("completion", try chatMessages(from: list, rows: .examples))[0]
        return .promptedConversation(prompt: turns, completion: answer)
    }

    /// `chatMessages`' problems name the field "messages"; here it is `field`.
    private static func named(_ field: String, _ read: @autoclosure () throws -> [ChatMessage]) throws -> [ChatMessage] {
        do { return try read() } catch let problem as LineProblem { throw LineProblem(renamed(problem.reason, field: field)) }
    }

    /// A `chatMessages` problem about turns read from `field`, not "messages".
    static func renamed(_ reason: String, field: String) -> String {
        reason.replacingOccurrences(of: "messages[", with: "\(field)[").replacingOccurrences(of: "\"messages\"", with: "\"\(field)\"")
    }
}
