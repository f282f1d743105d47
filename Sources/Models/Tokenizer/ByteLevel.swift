/// GPT-2's reversible byte ↔ printable-character map (openai/gpt-2 `encoder.py`
/// `bytes_to_unicode`; huggingface/tokenizers `pre_tokenizers/byte_level.rs` `bytes_char`).
///
/// Bytes `!`…`~`, 0xA1…0xAC and 0xAE…0xFF stand for themselves; every other byte, in increasing
/// order, becomes U+0100 + n (n = 0, 1, …), so space is `Ġ` (U+0120) and newline `Ċ` (U+010A).
/// Byte-level BPE vocabularies are written in these characters: one character per byte, so
/// any UTF-8 text is covered by the 256 base tokens and nothing is ever unknown.
public enum ByteLevel {
    /// `characters[b]` is the printable stand-in of byte b.
    public static let characters: [Character] = {
        var table = [Character](repeating: " ", count: 256)
        var n = 0
        for b in 0..<256 {
            let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            if printable {
                table[b] = Character(Unicode.Scalar(UInt8(b)))
            } else {
                table[b] = Character(Unicode.Scalar(UInt32(256 + n))!)
                n += 1
            }
        }
        return table
    }()

    /// The inverse: stand-in scalar → byte.
    public static let bytes: [Unicode.Scalar: UInt8] = {
        var map: [Unicode.Scalar: UInt8] = [:]
        for (b, c) in characters.enumerated() { map[c.unicodeScalars.first!] = UInt8(b) }
        return map
    }()

    /// The byte-level spelling of raw bytes (how vocabulary entries are written).
    public static func encode<S: Sequence>(_ raw: S) -> String where S.Element == UInt8 {
        var s = ""
        for b in raw { s.append(characters[Int(b)]) }
        return s
    }

    /// tokenizers' ByteLevel decoder for one token: its characters mapped back to bytes, or,
    /// when some character has no byte (an added token written in plain text), the token's own
    /// UTF-8 bytes.
    public static func decode(token: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(token.unicodeScalars.count)
        for s in token.unicodeScalars {
            guard let b = bytes[s] else { return Array(token.utf8) }
            out.append(b)
        }
        return out
    }
}
