import Foundation

/// The default system message of a ChatML template. Qwen2's, Qwen2.5's and SmolLM2's templates
/// write a whole system turn as one string literal when the conversation does not start with a
/// system message, e.g. Qwen2.5's
///
///     {%- else %}
///         {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
///
/// sft-dist does not run Jinja; it finds that literal among the template's strings and keeps
/// its text, so that training lays a conversation out as `apply_chat_template` does.
extension ChatTemplate {
    /// The text of the one literal `<|im_start|>system\n…<|im_end|>\n` in `jinja`'s expressions,
    /// or nil when there is none — or more than one, which sft-dist would have to guess between.
    static func chatMLDefaultSystem(in jinja: String) -> String? {
        let head = "<|im_start|>system\n", tail = "<|im_end|>\n"
        let found = Set(JinjaStringLiterals.values(in: jinja).compactMap { s -> String? in
            guard s.hasPrefix(head), s.hasSuffix(tail), s.count >= head.count + tail.count else { return nil }
            let middle = String(s.dropFirst(head.count).dropLast(tail.count))
            return middle.contains("<|im_start|>") || middle.contains("<|im_end|>") ? nil : middle
        })
        return found.count == 1 ? found.first : nil
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

    /// The header of a template that writes one: the cut-off from its literal, the date from
    /// `set date_string = "…"` (the one literal date; Llama 3.2's fallback beside strftime_now).
    /// nil when the template has no such header or sft-dist cannot read it whole.
    init?(in jinja: String) {
        let prefix = "Cutting Knowledge Date: "
        let cutoffs = Set(JinjaStringLiterals.values(in: jinja).filter { $0.hasPrefix(prefix) && $0.hasSuffix("\n") })
        guard cutoffs.count == 1, let line = cutoffs.first, JinjaStringLiterals.values(in: jinja).contains("Today Date: ") else { return nil }
        let dates = Set(JinjaStringLiterals.assignments(to: "date_string", in: jinja))
        guard dates.count == 1, let date = dates.first else { return nil }
        self.init(cutoff: String(line.dropFirst(prefix.count).dropLast()), date: date)
    }
}

/// The string literals of a Jinja template's `{{ … }}` and `{% … %}` tags, unescaped as Jinja
/// does (Python's `unicode-escape`: `\n`, `\'`, `\\`, `\xhh`, `\uhhhh`, …). Text outside the tags
/// and `{# … #}` comments are prose, whose quotes are not strings. A literal with an escape
/// this reader does not know (`\N{…}`) is left out rather than guessed at.
enum JinjaStringLiterals {
    static func values(in template: String) -> [String] {
        let c = Array(template.unicodeScalars)
        var out: [String] = []
        var i = 0
        func at(_ k: Int, _ s: String) -> Bool {
            let p = Array(s.unicodeScalars)
            return k + p.count <= c.count && Array(c[k..<k + p.count]) == p
        }
        while i < c.count {
            if at(i, "{#") {                        // a comment: up to its end
                i += 2
                while i < c.count && !at(i, "#}") { i += 1 }
                i += 2
            } else if at(i, "{{") || at(i, "{%") {  // a tag: its strings, up to its end
                let close = at(i, "{{") ? "}}" : "%}"
                i += 2
                while i < c.count && !at(i, close) {
                    if c[i] == "'" || c[i] == "\"" {
                        let (value, next) = literal(c, from: i)
                        if let value { out.append(value) }
                        i = next
                    } else { i += 1 }
                }
                i += 2
            } else { i += 1 }
        }
        return out
    }

    /// The literals assigned to `name` by `{% set name = '…' %}` tags.
    static func assignments(to name: String, in template: String) -> [String] {
        var out: [String] = []
        var rest = Substring(template)
        while let tag = rest.range(of: "{%") {
            guard let end = rest.range(of: "%}", range: tag.upperBound..<rest.endIndex) else { break }
            let body = rest[tag.upperBound..<end.lowerBound].trimmingCharacters(in: CharacterSet(charactersIn: "-+ \t\n"))
            let words = body.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            if words.count == 2, words[0] == "set " + name || words[0].split(whereSeparator: \.isWhitespace) == ["set", Substring(name)],
               let q = words[1].unicodeScalars.first, q == "'" || q == "\"" {
                let (value, next) = literal(Array(words[1].unicodeScalars), from: 0)
                if let value, next == words[1].unicodeScalars.count { out.append(value) }
            }
            rest = rest[end.upperBound...]
        }
        return out
    }

    /// The literal opening at `c[start]`: its value (nil if it cannot be read) and the index after it.
    static func literal(_ c: [Unicode.Scalar], from start: Int) -> (String?, Int) {
        let quote = c[start]
        var value = String.UnicodeScalarView(), ok = true
        var i = start + 1
        func hex(_ n: Int) -> Unicode.Scalar? {
            guard i + 2 + n <= c.count, let v = UInt32(String(String.UnicodeScalarView(c[(i + 2)..<(i + 2 + n)])), radix: 16) else { return nil }
            return Unicode.Scalar(v)
        }
        while i < c.count && c[i] != quote {
            if c[i] == "\r" {                       // Jinja normalises newlines inside strings
                value.append("\n")
                i += (i + 1 < c.count && c[i + 1] == "\n") ? 2 : 1
                continue
            }
            guard c[i] == "\\", i + 1 < c.count else { value.append(c[i]); i += 1; continue }
            let e = c[i + 1]
            switch e {
            case "n": value.append("\n"); i += 2
            case "t": value.append("\t"); i += 2
            case "r": value.append("\r"); i += 2
            case "\\", "'", "\"": value.append(e); i += 2
            case "a": value.append("\u{07}"); i += 2
            case "b": value.append("\u{08}"); i += 2
            case "f": value.append("\u{0C}"); i += 2
            case "v": value.append("\u{0B}"); i += 2
            case "\n": i += 2                       // a backslash-newline continues the line
            case "x", "u", "U":
                let n = e == "x" ? 2 : e == "u" ? 4 : 8
                if let s = hex(n) { value.append(s); i += 2 + n } else { ok = false; i += 2 }
            case "0"..."7":
                var v: UInt32 = 0, k = i + 1
                while k < c.count, k < i + 4, ("0"..."7").contains(c[k]) { v = v * 8 + c[k].value - 48; k += 1 }
                value.append(Unicode.Scalar(v)!); i = k
            case "N": ok = false; i += 2
            default: value.append("\\"); value.append(e); i += 2   // Python keeps an unknown escape as it is
            }
        }
        return (ok ? String(value) : nil, i + 1)
    }

    /// `s` as a single-quoted Jinja literal that `values(in:)` (and Jinja) reads back as `s`.
    static func quote(_ s: String) -> String {
        "'" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'")
            .replacingOccurrences(of: "\n", with: "\\n").replacingOccurrences(of: "\r", with: "\\r") + "'"
    }
}
