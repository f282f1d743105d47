import Foundation

/// JSON text written by hand where key order matters (safetensors headers, JSONL records):
/// one string-literal encoder for the whole project.
public enum JSONText {
    /// A JSON string literal: quotes, backslashes and control characters escaped; everything
    /// else (including non-ASCII) written as UTF-8, which JSON allows.
    public static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// A value from an input file, quoted for a message (control characters escaped, so the
    /// message stays one line) and cut to 40 characters, so a hostile multi-megabyte string
    /// never becomes a multi-megabyte error line.
    public static func brief(_ s: String) -> String {
        quote(s.count > 40 ? String(s.prefix(40)) + "…" : s)
    }

    /// A list or an object from an input file as JSON cut to 40 characters, for a message
    /// (Swift's `["x": <null>]` and Foundation's multi-line description are no syntax the user
    /// wrote); nil for any other value.
    public static func brief(structure v: Any) -> String? {
        guard v is [Any] || v is [String: Any],
              let d = try? JSONSerialization.data(withJSONObject: v, options: [.sortedKeys, .withoutEscapingSlashes]) else { return nil }
        let json = String(decoding: d, as: UTF8.self)
        return json.count > 40 ? json.prefix(40) + "…" : json
    }

    /// `s` as it is, or as a JSON string when it holds a control character, so a line that
    /// shows it stays one line and no escape sequence reaches the terminal.
    public static func plain(_ s: String) -> String {
        s.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F } ? quote(s) : s
    }
}
