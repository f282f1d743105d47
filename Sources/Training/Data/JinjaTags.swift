import Foundation

/// Just enough of a Jinja template's structure to read a value out of it without running it:
/// each `{{ … }}` / `{% … %}` tag with its string literals, and the `if` / `for` blocks it sits
/// in — so that a literal is taken for a default only where the template writes it by default
/// (`ChatTemplateDefaults.swift`). Comments and `{% raw %}` blocks are prose.
struct JinjaTag {
    enum Kind { case output, statement }
    /// An enclosing block: its keyword (`if`, `for`, `macro`, …), its condition or header with
    /// whitespace removed, `"` as `'` and `x.role` as `x['role']`, and whether the tag is in its
    /// `else` (or after an `elif`).
    struct Frame {
        let keyword: String
        let condition: String
        var inElse = false
        var afterElif = false
    }

    let kind: Kind
    /// The text between the delimiters, whitespace-control marks and spaces trimmed.
    let body: String
    /// The tag's string literals in order, unescaped; nil for one this reader cannot read.
    let literals: [String?]
    /// The body with each literal as `§` and no whitespace: `§+date_string+§`.
    let code: String
    /// The blocks the tag is in, outermost first.
    let frames: [Frame]

    /// The first word of a statement (`if`, `set`, `endfor`, …); "" for an output tag.
    var keyword: String { kind == .output ? "" : String(body.prefix { $0.isLetter || $0 == "_" }) }

    static func normalised(_ condition: Substring) -> String {
        String(condition.filter { !$0.isWhitespace }).replacingOccurrences(of: "\"", with: "'")
            .replacingOccurrences(of: ".role", with: "['role']")
    }

    /// The statements that open a block, closed by `end` + the keyword.
    static let blocks: Set = ["if", "for", "macro", "call", "filter", "with", "autoescape", "block", "trans", "generation"]
    /// Deeper than any real chat template; a template nested deeper is not read.
    static let maximumDepth = 64

    /// Every tag of `template`, in order; nil when sft-dist cannot follow its blocks (an `end…`
    /// that closes no open block of its kind, a block left open, nesting deeper than
    /// `maximumDepth`) — a value read out of such a template could be taken from the wrong branch.
    static func scan(_ template: String) -> [JinjaTag]? {
        let c = Array(template.unicodeScalars)
        var tags: [JinjaTag] = [], frames: [Frame] = []
        var i = 0
        func at(_ k: Int, _ s: String) -> Bool {
            let p = Array(s.unicodeScalars)
            return k + p.count <= c.count && Array(c[k..<k + p.count]) == p
        }
        /// Whether a `{% endraw %}` tag (whitespace control and spaces allowed) starts at `k`.
        func endRaw(_ k: Int) -> Bool {
            guard at(k, "{%") else { return false }
            var j = k + 2
            while j < c.count && (c[j] == "-" || c[j] == "+" || c[j].properties.isWhitespace) { j += 1 }
            guard at(j, "endraw") else { return false }
            j += 6
            return j < c.count && !(c[j].properties.isAlphabetic || c[j] == "_" || ("0"..."9").contains(c[j]))
        }
        while i < c.count {
            if at(i, "{#") {                        // a comment: up to its end
                i += 2
                while i < c.count && !at(i, "#}") { i += 1 }
                i += 2
                continue
            }
            guard at(i, "{{") || at(i, "{%") else { i += 1; continue }
            let kind: Kind = at(i, "{{") ? .output : .statement
            let close = kind == .output ? "}}" : "%}"
            var body = String.UnicodeScalarView(), code = String.UnicodeScalarView(), literals: [String?] = []
            var depth = 0                           // brackets inside the tag: `}}` of a dict does not close it
            i += 2
            while i < c.count && !(depth == 0 && at(i, close)) {
                if c[i] == "'" || c[i] == "\"" {
                    let (value, next) = JinjaStringLiterals.literal(c, from: i)
                    literals.append(value)
                    body.append(contentsOf: c[i..<min(next, c.count)])
                    code.append("§")
                    i = next
                    continue
                }
                if "{[(".unicodeScalars.contains(c[i]) { depth += 1 }
                if "}])".unicodeScalars.contains(c[i]) { depth = max(0, depth - 1) }
                body.append(c[i])
                if !c[i].properties.isWhitespace { code.append(c[i]) }
                i += 1
            }
            guard i < c.count else { return nil }   // a tag left open
            i += 2
            let marks = CharacterSet(charactersIn: "-+")
            let text = String(body).trimmingCharacters(in: marks.union(.whitespacesAndNewlines))
            let tag = JinjaTag(kind: kind, body: text, literals: literals,
                               code: String(code).trimmingCharacters(in: marks), frames: frames)
            tags.append(tag)
            let word = tag.keyword, rest = text.dropFirst(word.count)
            switch word {
            case "raw":                             // verbatim text up to {% endraw %}
                while i < c.count && !endRaw(i) { i += 1 }
                while i < c.count && !at(i, "%}") { i += 1 }
                guard i < c.count else { return nil }
                i += 2
            case _ where blocks.contains(word),
                 "set" where !tag.code.contains("="):   // `set x` … `endset`: a block set
                frames.append(Frame(keyword: word, condition: normalised(rest)))
                if frames.count > maximumDepth { return nil }
            case "elif", "else":
                guard let top = frames.last, top.keyword == "if" || top.keyword == "for" else { return nil }
                frames[frames.count - 1].inElse = true
                if word == "elif" { frames[frames.count - 1].afterElif = true }
            case _ where word.hasPrefix("end"):
                guard frames.last?.keyword == String(word.dropFirst(3)) else { return nil }
                frames.removeLast()
            default: break
            }
        }
        return frames.isEmpty ? tags : nil
    }
}

/// The string literals of a Jinja template's tags, unescaped as Jinja does (Python's
/// `unicode-escape`: `\n`, `\'`, `\\`, `\xhh`, `\uhhhh`, …). A literal with an escape this
/// reader does not know (`\N{…}`) is left out rather than guessed at.
enum JinjaStringLiterals {
    static func values(in template: String) -> [String] {
        (JinjaTag.scan(template) ?? []).flatMap { $0.literals.compactMap { $0 } }
    }

    /// The literals assigned to `name` by `{% set name = '…' %}` tags (a literal alone, not
    /// followed by a filter or an operator).
    static func assignments(to name: String, in tags: [JinjaTag]) -> [String] {
        tags.compactMap { $0.code == "set\(name)=§" && $0.literals.count == 1 ? $0.literals[0] : nil }
    }

    static func assignments(to name: String, in template: String) -> [String] {
        assignments(to: name, in: JinjaTag.scan(template) ?? [])
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
