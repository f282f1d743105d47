import Foundation
import Models

/// `--unlabelled FILE`: JSONL rows with a `prompt`, or `messages` without the final assistant
/// turn (the rows `generate --prompts` reads, through the same line reader). A row that carries
/// an answer anyway (a non-empty `completion`, or a final assistant turn) is read as its prompt
/// alone; the first such row is named in one warning.
public enum UnlabelledPrompts {
    public static func read(path: String, tokenizer: Tokenizer, template: ChatTemplate, maxLength: Int,
                            skipBadLines: Bool) throws -> (prompts: [SelfTrainPrompt], warning: String?) {
        let read = try JSONLReader.read(path: path, skipBadLines: skipBadLines, rows: .prompts)
        var prompts: [SelfTrainPrompt] = [], carrying: [String] = []
        for r in read.records {
            let example: Example
            switch r.record {
            case .promptCompletion(let prompt, let completion):
                if prompt.isEmpty { throw DataError("\(r.source): the prompt is empty (no text for the model to answer)") }
                if !completion.isEmpty { carrying.append(r.source) }
                example = ChatFormat.promptCompletion(prompt: prompt, completion: "", source: r.source, tokenizer: tokenizer)
            case .messages, .promptedConversation:
                // The turns before a final answer, refused as generate's and GRPO's prompts are when none.
                let (turns, reference) = try ChatFormat.promptTurns(r.record.turns!, source: r.source)
                if !(reference?.isEmpty ?? true) { carrying.append(r.source) }
                example = try ChatFormat.conversation(turns + [ChatMessage(role: .assistant, content: "")], source: r.source,
                                                      tokenizer: tokenizer, template: template)
            case .text:   // JSONLReader refuses them among prompts
                throw DataError(#"\#(r.source): a {"text"} row has no prompt"#)
            }
            guard example.promptLength < maxLength else {
                throw DataError("\(r.source): the prompt has \(example.promptLength) tokens, leaving no room for an answer within max_length \(maxLength)")
            }
            guard let p = SelfTrainPrompt(example: example, index: -1, tokenizer: tokenizer, reference: nil) else {
                throw DataError("\(r.source): the prompt cannot be formatted for an answer")
            }
            prompts.append(p)
        }
        var warning: String? = nil
        if let first = carrying.first {
            warning = "\(first): unlabelled rows carry completions (\(carrying.count) row\(carrying.count == 1 ? "" : "s")); only their prompts are used"
        }
        if let s = read.skippedSummary { warning = [warning, s].compactMap { $0 }.joined(separator: "; ") }
        return (prompts, warning)
    }
}
