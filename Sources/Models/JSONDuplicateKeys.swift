import Foundation

/// The first key that an object of JSON text repeats. Parsers keep one of the two values
/// silently (Foundation and Python's `json` the last), so `{"prompt": …, "completion": " 3",
/// "completion": " 4"}` would train on " 4" with no word; data readers refuse such a row instead.
/// Keys with escapes are compared decoded (`"compl\u0065tion"` is `"completion"`).
public enum JSONDuplicateKeys {
    /// `bytes` must already have parsed as JSON: this only follows strings and brackets.
    public static func first<C: Collection>(_ bytes: C) -> String? where C.Element == UInt8 {
        var objects: [Set<[UInt8]>?] = []   // per open bracket: the keys seen, nil for an array
        var expectingKey = false
        var i = bytes.startIndex
        while i != bytes.endIndex {
            switch bytes[i] {
            case 0x22:   // a string: read to its closing quote, keeping its bytes if it is a key
                let isKey = expectingKey && objects.last.map { $0 != nil } == true
                var s: [UInt8] = []
                i = bytes.index(after: i)
                while i != bytes.endIndex, bytes[i] != 0x22 {
                    if isKey { s.append(bytes[i]) }
                    if bytes[i] == 0x5C {   // an escape: take the next byte as it is
                        i = bytes.index(after: i)
                        if i == bytes.endIndex { return nil }
                        if isKey { s.append(bytes[i]) }
                    }
                    i = bytes.index(after: i)
                }
                if isKey, let last = objects.indices.last {
                    if s.contains(0x5C) { s = decoded(s) }
                    if !objects[last]!.insert(s).inserted { return String(decoding: s, as: UTF8.self) }
                    expectingKey = false
                }
            case 0x7B: objects.append([]); expectingKey = true        // {
            case 0x5B: objects.append(nil); expectingKey = false      // [
            case 0x7D, 0x5D: _ = objects.popLast(); expectingKey = false
            case 0x2C: expectingKey = objects.last.map { $0 != nil } ?? false   // ,
            default: break
            }
            if i != bytes.endIndex { i = bytes.index(after: i) }
        }
        return nil
    }

    /// A key's bytes with its escapes decoded (the text has parsed, so the string is valid).
    private static func decoded(_ raw: [UInt8]) -> [UInt8] {
        let quoted = Data(JSONByteOrderMarks.escaped(([0x22] + raw + [0x22])[...]))
        guard let text = (try? JSONSerialization.jsonObject(with: quoted, options: .fragmentsAllowed)) as? String else { return raw }
        return Array(text.utf8)
    }
}
