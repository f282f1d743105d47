import Foundation

/// A model directory's JSON files (config.json, tokenizer.json, tokenizer_config.json) read as
/// one JSON object, through `InputFile` (regular files only, bounded size). When Foundation's
/// parser refuses the text, the strict parser of `SafeTensorsJSON` says where and why, so the
/// message is `config.json: not valid JSON: unexpected character at byte 57 (NaN and Infinity
/// are not JSON numbers)` rather than "not a JSON object".
public enum JSONObjectFile {
    /// Far above any real config.json or tokenizer_config.json (kilobytes; chat templates
    /// make the latter up to a few hundred). tokenizer.json has its own limit.
    public static let defaultLimit = 1 << 24

    public static func read(_ path: String, limit: Int = defaultLimit) throws -> [String: Any] {
        let data: Data
        do { data = try InputFile.read(path, limit: limit, what: "a JSON file") } catch let p as InputFile.Problem {
            throw ModelError(p.description)
        }
        return try parse(data, path: path)
    }

    /// Like `read`, but nil when the file does not exist.
    public static func readIfPresent(_ path: String, limit: Int = defaultLimit) throws -> [String: Any]? {
        do {
            guard let data = try InputFile.readIfPresent(path, limit: limit, what: "a JSON file") else { return nil }
            return try parse(data, path: path)
        } catch let p as InputFile.Problem {
            throw ModelError(p.description)
        }
    }

    /// Parses bytes already read from `path` (named in messages).
    public static func parse(_ data: Data, path: String) throws -> [String: Any] {
        if let object = try? JSONSerialization.jsonObject(with: data) {
            if data.starts(with: [0xEF, 0xBB, 0xBF]) {
                throw ModelError("\(path): not valid JSON: the file starts with a UTF-8 byte-order mark (Foundation reads it; Python's json, and so transformers, does not)")
            }
            if let at = JSONNesting.trailingComma(data) {
                throw ModelError("\(path): not valid JSON: a comma before a closing bracket at byte \(at) (Foundation reads it; Python's json, and so transformers, does not)")
            }
            guard let fields = object as? [String: Any] else {
                throw ModelError("\(path): the top level is \(object is [Any] ? "an array" : "not an object"), not a JSON object")
            }
            return fields
        }
        throw ModelError("\(path): \(diagnose(data))")
    }

    /// Why `data` is not JSON, with a byte offset.
    static func diagnose(_ data: Data) -> String {
        data.withUnsafeBytes { raw -> String in
            if let bad = SafeTensorsHeader.firstInvalidUTF8Offset(raw) {
                return "not valid UTF-8 (invalid byte sequence at byte \(bad))"
            }
            do {
                _ = try SafeTensorsJSON.Parser.parse(raw)
            } catch SafeTensorsJSON.Failure.syntax(let what, let offset) {
                let rest = raw[min(offset, raw.count)...].prefix(9)
                let nonFinite = ["NaN", "Infinity", "-Infinity"].contains { rest.starts(with: $0.utf8) }
                return "not valid JSON: \(what) at byte \(offset)" + (nonFinite ? " (NaN and Infinity are not JSON numbers)" : "")
            } catch {
                // Duplicate keys or deep nesting: Foundation's parser accepts the first and
                // has its own limit on the second (the strict parser's is 32 levels).
            }
            if JSONNesting.depth(raw, limit: foundationDepth) > foundationDepth {
                return "not valid JSON: it nests deeper than \(foundationDepth) levels"
            }
            if let (offset, number) = firstNumberBeyondDouble(raw) {
                return "not valid JSON: the number \(number.count > 24 ? number.prefix(20) + "… (\(number.count) characters)" : number) at byte \(offset) is beyond a double's range"
            }
            return "not valid JSON"
        }
    }

    static let numberBytes = Set("0123456789+-.eE".utf8)

    /// Foundation's parser refuses deeper text.
    static let foundationDepth = 512

    /// The first number outside strings whose value does not fit a double (1e400, or a
    /// 100,000-digit integer), which Foundation's parser refuses, and its byte offset.
    static func firstNumberBeyondDouble(_ raw: UnsafeRawBufferPointer) -> (Int, String)? {
        var inString = false, escaped = false, i = 0
        while i < raw.count {
            let b = raw[i]
            if inString {
                if escaped { escaped = false } else if b == 0x5C { escaped = true } else if b == 0x22 { inString = false }
                i += 1
                continue
            }
            if b == 0x22 { inString = true; i += 1; continue }
            guard b == 0x2D || (0x30...0x39).contains(b) else { i += 1; continue }
            let start = i
            while i < raw.count, numberBytes.contains(raw[i]) { i += 1 }
            let text = String(decoding: raw[start..<i], as: UTF8.self)
            if let v = Double(text), !v.isFinite { return (start, text) }
        }
        return nil
    }
}
