import Foundation

/// The default system message of a ChatML template. Qwen2's, Qwen2.5's and SmolLM2's templates
/// write a whole system turn as one string literal when the conversation does not start with a
/// system message, e.g. Qwen2.5's
///
///     {%- else %}
///         {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
///
/// sft-dist does not run Jinja; it finds that literal where the template writes it by default —
/// in the branch taken when the first message is not a system one, inside nothing but the loop
/// over the messages and the branch taken without tools (transformers passes `tools=None`) —
/// and keeps its text, so that training lays a conversation out as `apply_chat_template` does.
/// A system turn written under any other condition is not guessed at.
extension ChatTemplate {
    /// The text of the one default `<|im_start|>system\n…<|im_end|>\n` literal in `jinja`, or
    /// nil when there is none — or more than one, which sft-dist would have to guess between.
    static func chatMLDefaultSystem(in jinja: String) -> String? {
        let found = Set(JinjaTag.scan(jinja).filter { isDefaultBranch($0.frames) }.compactMap(chatMLSystemTurn))
        return found.count == 1 ? found.first : nil
    }

    /// Whether `jinja` writes a literal ChatML system turn anywhere, default or not.
    static func writesChatMLSystemTurn(_ jinja: String) -> Bool {
        JinjaTag.scan(jinja).contains { chatMLSystemTurn($0) != nil }
    }

    /// The system message of an output tag that is one `'<|im_start|>system\n…<|im_end|>\n'` literal.
    static func chatMLSystemTurn(_ tag: JinjaTag) -> String? {
        let head = "<|im_start|>system\n", tail = "<|im_end|>\n"
        guard tag.kind == .output, tag.code == "§", let s = tag.literals[0],
              s.hasPrefix(head), s.hasSuffix(tail), s.count >= head.count + tail.count else { return nil }
        let middle = String(s.dropFirst(head.count).dropLast(tail.count))
        return middle.contains("<|im_start|>") || middle.contains("<|im_end|>") ? nil : middle
    }

    /// The branch a template writes its default system turn in: Qwen2's `{% if loop.first and
    /// messages[0]['role'] != 'system' %}` in the loop over the messages, Qwen2.5's `{% else %}`
    /// of `{% if messages[0]['role'] == 'system' %}` in the `{% else %}` of `{% if tools %}`.
    static func isDefaultBranch(_ frames: [JinjaTag.Frame]) -> Bool {
        guard let inner = frames.last, inner.keyword == "if" else { return false }
        let noSystem: Set = ["messages[0]['role']!='system'", "loop.firstandmessages[0]['role']!='system'",
                             "messages[0]['role']!='system'andloop.first", "notmessages[0]['role']=='system'"]
        let isDefault = (!inner.inElse && noSystem.contains(inner.condition))
            || (inner.inElse && !inner.afterElif && inner.condition == "messages[0]['role']=='system'")
        return isDefault && frames.dropLast().allSatisfy { f in
            (f.keyword == "for" && f.condition == "messageinmessages")
                || (f.keyword == "if" && f.condition == "tools" && f.inElse && !f.afterElif)
        }
    }
}

/// Llama 3.1's and 3.2's system header. Their templates always write a system turn,
///
///     {{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
///     {{- "Cutting Knowledge Date: December 2023\n" }}
///     {{- "Today Date: " + date_string + "\n\n" }}
///     {{- system_message }}
///
/// with `date_string` set to "26 Jul 2024" (3.2: to `strftime_now("%d %b %Y")` when the renderer
/// has it, that date otherwise) and `system_message` the conversation's own, trimmed, or "".
public struct Llama3DateHeader: Sendable, Hashable {
    public let cutoff: String
    public let date: String

    public init(cutoff: String, date: String) {
        self.cutoff = cutoff
        self.date = date
    }

    /// What the system turn's text starts with.
    public var text: String { "Cutting Knowledge Date: \(cutoff)\nToday Date: \(date)\n\n" }

    /// The header of a template that writes one, as Llama 3.1's does: at its top level (whatever
    /// the conversation) the system header, the cut-off literal and `"Today Date: " + date_string
    /// + "\n\n"`, the date from `set date_string = "…"` (the one literal date; Llama 3.2's
    /// fallback beside strftime_now). nil when the template has no such header or sft-dist
    /// cannot read it whole.
    init?(in jinja: String) {
        let prefix = "Cutting Knowledge Date: "
        let top = JinjaTag.scan(jinja).filter { $0.kind == .output && $0.frames.isEmpty }
        guard top.contains(where: { $0.code == "§" && $0.literals == ["<|start_header_id|>system<|end_header_id|>\n\n"] }),
              top.contains(where: { $0.code == "§+date_string+§" && $0.literals == ["Today Date: ", "\n\n"] }) else { return nil }
        let cutoffs = Set(top.compactMap { t -> String? in
            guard t.code == "§", let s = t.literals[0], s.hasPrefix(prefix), s.hasSuffix("\n") else { return nil }
            return String(s.dropFirst(prefix.count).dropLast())
        })
        let dates = Set(JinjaStringLiterals.assignments(to: "date_string", in: jinja))
        guard cutoffs.count == 1, let cutoff = cutoffs.first, dates.count == 1, let date = dates.first else { return nil }
        self.init(cutoff: cutoff, date: date)
    }
}
