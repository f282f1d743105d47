import Foundation

/// A minimal JSON value for safetensors headers and `model.safetensors.index.json`.
///
/// Why our own parser instead of JSONSerialization: we reject duplicate keys (a duplicated tensor
/// name means a corrupt or hand-edited header, and which copy wins is arbitrary), but
/// JSONSerialization silently keeps one of them — as does the reference reader (safetensors 0.8.0
/// accepts them, checked by experiment). We also need exact integer semantics for shapes and
/// offsets (no silent Double rounding, `1.0` is not `1`, as in serde's `usize`), object key order,
/// and a hard nesting limit so hostile input cannot overflow the stack. Numbers are kept as their
/// source text and only converted where an integer is expected.
enum SafeTensorsJSON {
    indirect enum Value {
        case object([(key: String, value: Value)])
        case array([Value])
        case string(String)
        case number(String)
        case bool(Bool)
        case null

        /// The value as a non-negative `Int`, if it is an integer literal that fits.
        var nonNegativeInt: Int? {
            guard case .number(let text) = self, let v = Int(text), v >= 0 else { return nil }
            return v
        }

        /// A short rendering for error messages (`[2, 3]`, `"F33"`, `an object`…), bounded in length.
        var brief: String {
            switch self {
            case .object: return "an object"
            case .array(let items):
                let shown = items.prefix(8).map { item -> String in
                    if case .array = item { return "[…]" }
                    if case .object = item { return "{…}" }
                    return item.brief
                }
                return "[" + shown.joined(separator: ", ") + (items.count > 8 ? ", …]" : "]")
            case .string(let s): return "\"" + (s.count > 40 ? String(s.prefix(40)) + "…" : s) + "\""
            case .number(let t): return t.count > 24 ? String(t.prefix(24)) + "…" : t
            case .bool(let b): return b ? "true" : "false"
            case .null: return "null"
            }
        }
    }

    /// Why a JSON text failed to parse. `offset` is a byte offset into the parsed text.
    enum Failure: Error {
        case syntax(String, offset: Int)
        case duplicateKey(String, path: [String])
        case tooDeep(offset: Int)
    }

    /// Recursive-descent parser over raw bytes (RFC 8259 grammar; the bytes are assumed to have been
    /// checked as UTF-8 by the caller, so string contents are decoded without re-validation except for
    /// `\u` escapes, where lone surrogates are rejected as serde_json does).
    struct Parser {
        static let maxDepth = 32

        private let bytes: UnsafeRawBufferPointer
        private var pos = 0
        private var path: [String] = []

        /// Parses one JSON value that must span all of `bytes` apart from surrounding whitespace.
        static func parse(_ bytes: UnsafeRawBufferPointer) throws -> Value {
            var parser = Parser(bytes: bytes)
            parser.skipWhitespace()
            let value = try parser.parseValue(depth: 0)
            parser.skipWhitespace()
            if parser.pos != bytes.count {
                throw Failure.syntax("unexpected characters after the JSON value", offset: parser.pos)
            }
            return value
        }

        private init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

        private var atEnd: Bool { pos >= bytes.count }
        private var current: UInt8 { bytes[pos] }

        private mutating func skipWhitespace() {
            while !atEnd {
                let c = current
                guard c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 else { return }
                pos += 1
            }
        }

        private func fail(_ what: String) -> Failure {
            if atEnd { return .syntax("\(what), found end of text", offset: pos) }
            let c = current
            let shown = (0x21...0x7E).contains(c) ? "'\(Character(Unicode.Scalar(c)))'" : String(format: "byte 0x%02X", c)
            return .syntax("\(what), found \(shown)", offset: pos)
        }

        private mutating func expect(_ byte: UInt8, _ what: String) throws {
            guard !atEnd, current == byte else { throw fail("expected \(what)") }
            pos += 1
        }

        private mutating func parseValue(depth: Int) throws -> Value {
            guard !atEnd else { throw fail("expected a value") }
            switch current {
            case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
            case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try parseString())
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            default: throw fail("expected a value")
            }
        }

        private mutating func literal(_ word: String) throws {
            for b in word.utf8 {
                guard !atEnd, current == b else { throw fail("expected '\(word)'") }
                pos += 1
            }
        }

        private mutating func parseObject(depth: Int) throws -> Value {
            if depth > Parser.maxDepth { throw Failure.tooDeep(offset: pos) }
            pos += 1  // '{'
            var members: [(key: String, value: Value)] = []
            var seen = Set<String>()
            skipWhitespace()
            if !atEnd, current == UInt8(ascii: "}") { pos += 1; return .object(members) }
            while true {
                skipWhitespace()
                guard !atEnd, current == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let key = try parseString()
                if !seen.insert(key).inserted { throw Failure.duplicateKey(key, path: path) }
                skipWhitespace()
                try expect(UInt8(ascii: ":"), "':' after object key")
                skipWhitespace()
                path.append(key)
                let value = try parseValue(depth: depth)
                path.removeLast()
                members.append((key, value))
                skipWhitespace()
                guard !atEnd else { throw fail("expected ',' or '}'") }
                if current == UInt8(ascii: ",") { pos += 1; continue }
                if current == UInt8(ascii: "}") { pos += 1; return .object(members) }
                throw fail("expected ',' or '}'")
            }
        }

        private mutating func parseArray(depth: Int) throws -> Value {
            if depth > Parser.maxDepth { throw Failure.tooDeep(offset: pos) }
            pos += 1  // '['
            var items: [Value] = []
            skipWhitespace()
            if !atEnd, current == UInt8(ascii: "]") { pos += 1; return .array(items) }
            while true {
                skipWhitespace()
                items.append(try parseValue(depth: depth))
                skipWhitespace()
                guard !atEnd else { throw fail("expected ',' or ']'") }
                if current == UInt8(ascii: ",") { pos += 1; continue }
                if current == UInt8(ascii: "]") { pos += 1; return .array(items) }
                throw fail("expected ',' or ']'")
            }
        }

        private mutating func parseNumber() throws -> String {
            let start = pos
            if current == UInt8(ascii: "-") { pos += 1 }
            guard !atEnd, isDigit(current) else { throw fail("expected a digit") }
            if current == UInt8(ascii: "0") { pos += 1 } else { while !atEnd, isDigit(current) { pos += 1 } }
            if !atEnd, current == UInt8(ascii: ".") {
                pos += 1
                guard !atEnd, isDigit(current) else { throw fail("expected a digit after '.'") }
                while !atEnd, isDigit(current) { pos += 1 }
            }
            if !atEnd, current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                pos += 1
                if !atEnd, current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { pos += 1 }
                guard !atEnd, isDigit(current) else { throw fail("expected a digit in the exponent") }
                while !atEnd, isDigit(current) { pos += 1 }
            }
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self)
        }

        private func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }

        private mutating func parseString() throws -> String {
            pos += 1  // opening quote
            let start = pos
            // Fast path: no escapes.
            while !atEnd, current != UInt8(ascii: "\""), current != UInt8(ascii: "\\"), current >= 0x20 { pos += 1 }
            guard !atEnd else { throw fail("unterminated string") }
            if current == UInt8(ascii: "\"") {
                let s = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self)
                pos += 1
                return s
            }
            var out = Array(UnsafeRawBufferPointer(rebasing: bytes[start..<pos]))
            while true {
                guard !atEnd else { throw fail("unterminated string") }
                let c = current
                if c == UInt8(ascii: "\"") { pos += 1; break }
                if c < 0x20 { throw fail("control character in string (must be escaped)") }
                if c != UInt8(ascii: "\\") { out.append(c); pos += 1; continue }
                pos += 1
                guard !atEnd else { throw fail("unterminated escape") }
                let e = current
                pos += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = UInt32(try hex4())
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard pos + 1 < bytes.count, current == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u")
                        else { throw fail("lone leading surrogate in \\u escape") }
                        pos += 2
                        let low = UInt32(try hex4())
                        guard (0xDC00..<0xE000).contains(low) else { throw fail("invalid trailing surrogate in \\u escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        throw fail("lone trailing surrogate in \\u escape")
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw fail("invalid \\u escape") }
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default:
                    pos -= 1
                    throw fail("invalid escape")
                }
            }
            return String(decoding: out, as: UTF8.self)
        }

        private mutating func hex4() throws -> UInt16 {
            var v: UInt16 = 0
            for _ in 0..<4 {
                guard !atEnd else { throw fail("expected 4 hex digits in \\u escape") }
                let c = current
                let d: UInt8
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
                default: throw fail("expected 4 hex digits in \\u escape")
                }
                v = v << 4 | UInt16(d)
                pos += 1
            }
            return v
        }
    }
}
