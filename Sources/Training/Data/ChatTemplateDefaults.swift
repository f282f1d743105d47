import Foundation
import Models

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
        // A template that reassigns `messages` tests another list than the conversation's.
        guard let tags = JinjaTag.scan(jinja), !tags.contains(where: { $0.keyword == "set" && $0.code.hasPrefix("setmessages=") }) else { return nil }
        let found = Set(tags.filter { isDefaultBranch($0.frames) }.compactMap(chatMLSystemTurn))
        return found.count == 1 ? found.first : nil
    }

    /// For the log: what was read from the model's template `text` beyond the layout, and what
    /// it writes that the layouts do not — said, not silently dropped.
    func whatWasRead(from text: String, bos: String?) -> String {
        // Quoted as JSON: a newline or an escape sequence in it broke the note over lines.
        var what = defaultSystem.map { ", with its default system message \(JSONText.quote($0)) for conversations without one" } ?? ""
        if let h = dateHeader {
            what += ", with its system turn's header \"Cutting Knowledge Date: \(h.cutoff)\", \"Today Date: \(h.date)\""
            // Llama 3.2's template dates it through strftime_now; a fixed date keeps a run,
            // its resumes and its ranks on the same tokens whatever the day.
            if text.contains("strftime_now") { what += " (the template's fixed date, where transformers writes today's)" }
        }
        if layout == .llama3, dateHeader == nil, text.contains("Cutting Knowledge Date") {
            what += "; note: its dated system turn could not be read, so conversations are laid out without it"
        }
        if layout == .chatml, defaultSystem == nil {
            switch Self.writesChatMLSystemTurn(text) {
            case true?: what += "; note: it writes a fixed system turn under a condition sft-dist does not read, so conversations are laid out without it"
            case nil: what += "; note: sft-dist cannot follow its blocks, so it reads no default system message from it"
            default: break
            }
        }
        for difference in Self.differences(from: text, layout: layout, bos: bos) {
            what += "; note: \(difference): conversations are laid out as sft-dist's \(layout.rawValue), not as this template writes them (pass --chat-template to choose)"
        }
        if thinking {
            what += ", with Qwen3's <think> blocks (one before the last reply, empty unless the reply holds its reasoning before </think>; earlier replies without their reasoning)"
        } else if layout == .chatml, text.contains("</think>") {
            what += "; note: it also writes <think> blocks into assistant turns in a way sft-dist does not follow (not Qwen3's): replies are trained and generated without them"
        }
        return what
    }

    /// Whether `jinja` writes a literal ChatML system turn anywhere, default or not (nil: its
    /// blocks cannot be followed).
    static func writesChatMLSystemTurn(_ jinja: String) -> Bool? {
        JinjaTag.scan(jinja).map { $0.contains { chatMLSystemTurn($0) != nil } }
    }

    /// The system message of an output tag that is one `'<|im_start|>system\n…<|im_end|>\n'` literal.
    static func chatMLSystemTurn(_ tag: JinjaTag) -> String? {
        let head = "<|im_start|>system\n", tail = "<|im_end|>\n"
        guard tag.kind == .output, tag.code == "§", tag.literals.count == 1, let s = tag.literals[0],
              s.hasPrefix(head), s.hasSuffix(tail), s.count >= head.count + tail.count else { return nil }
        let middle = String(s.dropFirst(head.count).dropLast(tail.count))
        return middle.contains("<|im_start|>") || middle.contains("<|im_end|>") ? nil : middle
    }

    /// The branch a template writes its default system turn in: Qwen2's `{% if loop.first and
    /// messages[0]['role'] != 'system' %}` in `{% for message in messages %}`, Qwen2.5's `{% else %}`
    /// of `{% if messages[0]['role'] == 'system' %}` in the `{% else %}` of `{% if tools %}`.
    static func isDefaultBranch(_ frames: [JinjaTag.Frame]) -> Bool {
        guard let inner = frames.last, inner.keyword == "if" else { return false }
        let outer = frames.dropLast()
        guard outer.allSatisfy({ f in
            (f.keyword == "for" && f.condition == "messageinmessages" && !f.inElse)
                || (f.keyword == "if" && f.condition == "tools" && f.inElse && !f.afterElif)
        }) else { return false }
        let noSystem = "messages[0]['role']!='system'", system = "messages[0]['role']=='system'"
        if outer.contains(where: { $0.keyword == "for" }) {  // once, before the first message
            return !inner.inElse && ["loop.firstand" + noSystem, noSystem + "andloop.first"].contains(inner.condition)
        }
        return (!inner.inElse && [noSystem, "not" + system].contains(inner.condition))
            || (inner.inElse && !inner.afterElif && inner.condition == system)
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
        guard let tags = JinjaTag.scan(jinja) else { return nil }
        // Written at the top level, one after the other: the header, the cut-off, the date, the
        // system message (the first message's content, trimmed) and the turn's end.
        let top = tags.filter { $0.kind == .output && $0.frames.isEmpty }
        let prefix = "Cutting Knowledge Date: "
        guard let start = top.firstIndex(where: { $0.code == "§" && $0.literals == ["<|start_header_id|>system<|end_header_id|>\n\n"] }),
              start + 4 < top.count else { return nil }
        let (cut, today, system, end) = (top[start + 1], top[start + 2], top[start + 3], top[start + 4])
        guard cut.code == "§", cut.literals.count == 1, let line = cut.literals[0], line.hasPrefix(prefix), line.hasSuffix("\n"),
              today.code == "§+date_string+§", today.literals == ["Today Date: ", "\n\n"],
              system.code == "system_message", end.code == "§", end.literals == ["<|eot_id|>"],
              tags.contains(where: { $0.code == "setsystem_message=messages[0][§]|trim" && $0.literals == ["content"] })
        else { return nil }
        // The date: the one literal it is set to; besides it only Llama 3.2's strftime_now.
        let sets = tags.filter { $0.keyword == "set" && $0.code.hasPrefix("setdate_string=") }
        let dates = JinjaStringLiterals.assignments(to: "date_string", in: tags)
        let today32 = sets.filter { $0.code == "setdate_string=strftime_now(§)" }.count
        guard Set(dates).count == 1, let date = dates.first, sets.count == dates.count + today32 else { return nil }
        self.init(cutoff: String(line.dropFirst(prefix.count).dropLast()), date: date)
    }
}
