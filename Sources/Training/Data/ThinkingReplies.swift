import Foundation

/// Qwen3's reasoning blocks, as its chat template writes them (Qwen3 Technical Report,
/// arXiv 2505.09388, §4: thinking and non-thinking modes in one model; the template is
/// Qwen3-*'s tokenizer_config.json `chat_template`, which transformers' `apply_chat_template`
/// runs, and so TRL's SFT):
///
/// - an assistant turn's reasoning is its `reasoning_content`; without one, a content holding
///   `</think>` is split there: what precedes it (after a `<think>`) is the reasoning, what
///   follows it the reply;
/// - an assistant turn after the last user query gets `<think>\n{reasoning}\n</think>\n\n`
///   before its reply when it is the conversation's last message (an empty block when it has no
///   reasoning) or has reasoning; every other assistant turn is its reply alone, its reasoning
///   dropped;
/// - the generation prompt is `<|im_start|>assistant\n` (the template's `enable_thinking`
///   unset), so the block is part of what the model is trained to write.
///
/// `str.strip('\n')`-style trims are of U+000A only, as Python's.
public enum ThinkingReplies {
    static let open = "<think>", close = "</think>"

    /// The template's `ns.last_query_index`: the last user message that is not a
    /// `<tool_response>…</tool_response>` wrapper; the last index when there is none.
    static func lastQueryIndex(_ messages: [ChatMessage]) -> Int {
        messages.lastIndex { $0.role == .user && !($0.content.hasPrefix("<tool_response>") && $0.content.hasSuffix("</tool_response>")) }
            ?? messages.count - 1
    }

    /// (reasoning, reply) of an assistant content: `content.split('</think>')[0].rstrip('\n')
    /// .split('<think>')[-1].lstrip('\n')` and `content.split('</think>')[-1].lstrip('\n')`;
    /// no `</think>`: no reasoning, the content whole.
    public static func split(_ content: String) -> (reasoning: String, reply: String) {
        guard content.contains(close) else { return ("", content) }
        let parts = content.components(separatedBy: close)
        let reasoning = trimNewlines(trimNewlines(parts[0], leading: false).components(separatedBy: open).last!, trailing: false)
        return (reasoning, trimNewlines(parts.last!, trailing: false))
    }

    /// (reasoning, reply) of an assistant turn: its `reasoning_content` and whole content when
    /// the row has one (the template then splits nothing), else `split(content)`.
    public static func parts(_ message: ChatMessage) -> (reasoning: String, reply: String) {
        if let r = message.reasoning { return (r, message.content) }
        return split(message.content)
    }

    /// What the template writes after `<|im_start|>assistant\n` for assistant message `index`.
    static func reply(_ messages: [ChatMessage], _ index: Int, lastQuery: Int) -> String {
        let (reasoning, reply) = parts(messages[index])
        guard index > lastQuery, index == messages.count - 1 || !reasoning.isEmpty else { return reply }
        return open + "\n" + trimNewlines(reasoning) + "\n" + close + "\n\n" + trimNewlines(reply, trailing: false)
    }

    /// A completion's answer: a leading reasoning block (`<think>…</think>`, after any
    /// whitespace) and the newlines after it removed. Scorers compare answers, not reasoning.
    public static func answer(_ text: String) -> String {
        let start = text.drop { $0.isWhitespace }
        guard start.hasPrefix(open), let end = start.range(of: close) else { return text }
        return trimNewlines(String(start[end.upperBound...]), trailing: false)
    }

    /// Python's `strip('\n')`, `lstrip('\n')` (trailing: false), `rstrip('\n')` (leading: false).
    static func trimNewlines(_ s: String, leading: Bool = true, trailing: Bool = true) -> String {
        let u = s.unicodeScalars
        var lo = u.startIndex, hi = u.endIndex
        while leading, lo < hi, u[lo] == "\n" { lo = u.index(after: lo) }
        while trailing, lo < hi, u[u.index(before: hi)] == "\n" { hi = u.index(before: hi) }
        return String(Substring(u[lo..<hi]))
    }
}
