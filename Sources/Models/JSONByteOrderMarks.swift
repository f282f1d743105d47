/// A raw U+FEFF (bytes EF BB BF) inside a JSON string is a character like any other — Python's
/// `json` keeps it — but Foundation's parser, decoding each string value on its own, drops one
/// at the start of a value (`"\u{FEFF}hi"` read as "hi"). Before parsing, each such BOM inside
/// a string is written as the escape `\ufeff`, which means the same character. One escaped by a
/// backslash (invalid JSON) or outside strings (Foundation's concern: a line starting with one
/// is read as before) is left as it is, so what the parser refuses is unchanged.
public enum JSONByteOrderMarks {
    /// The text with its in-string BOMs escaped; the input itself when it has none.
    public static func escaped(_ text: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var out: [UInt8]? = nil, copied = text.startIndex
        var inString = false, escaping = false
        var i = text.startIndex
        while i < text.endIndex {
            let b = text[i]
            if !inString {
                if b == 0x22 { inString = true }
            } else if escaping {
                escaping = false
            } else if b == 0x5C {
                escaping = true
            } else if b == 0x22 {
                inString = false
            } else if b == 0xEF && i + 2 < text.endIndex && text[i + 1] == 0xBB && text[i + 2] == 0xBF {
                if out == nil { out = []; out!.reserveCapacity(text.count + 16) }
                out! += text[copied..<i]
                out! += escape
                i += 3
                copied = i
                continue
            }
            i += 1
        }
        guard var result = out else { return text }
        result += text[copied...]
        return result[...]
    }

    static let escape = Array("\\ufeff".utf8)
}
