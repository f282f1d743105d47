/// How deeply JSON text nests arrays and objects, found without parsing it. Foundation's
/// JSONDecoder traps instead of throwing on text that passes its depth limit of 512 exactly
/// where the input ends (513 `[` then end of input: the scanner computes the error's source
/// location past the end), so untrusted JSON is checked with this before it is decoded.
public enum JSONNesting {
    /// The deepest nesting in `bytes` (brackets inside strings do not count); stops counting
    /// once `limit` is passed, so the answer is at most `limit + 1`.
    public static func depth<C: Collection>(_ bytes: C, limit: Int) -> Int where C.Element == UInt8 {
        var depth = 0, deepest = 0
        forEachBracket(bytes) { b in
            if b == 0x5B || b == 0x7B {
                depth += 1
                deepest = max(deepest, depth)
                return deepest <= limit
            }
            depth = max(0, depth - 1)
            return true
        }
        return deepest
    }

    /// How many JSON objects (`{`, brackets inside strings do not count) `bytes` holds; stops
    /// counting once `limit` is passed, so the answer is at most `limit + 1`. Lets a file of
    /// many small objects be refused before Foundation parses it (its objects cost ≈ 100 bytes
    /// of memory for every byte of such text).
    public static func objectCount<C: Collection>(_ bytes: C, limit: Int) -> Int where C.Element == UInt8 {
        var count = 0
        forEachBracket(bytes) { b in
            if b == 0x7B { count += 1 }
            return count <= limit
        }
        return count
    }

    /// The byte offset of the first comma that only whitespace separates from a closing `]` or
    /// `}` (outside strings), or nil. Foundation's parser accepts `{"a": 1,}`; Python's `json`,
    /// and so transformers, refuses it, so a model file written that way is refused here too.
    public static func trailingComma<C: Collection>(_ bytes: C) -> Int? where C.Element == UInt8 {
        var inString = false, escaped = false, comma: Int? = nil
        for (i, b) in bytes.enumerated() {
            if inString {
                if escaped { escaped = false } else if b == 0x5C { escaped = true } else if b == 0x22 { inString = false }
                continue
            }
            switch b {
            case 0x20, 0x09, 0x0A, 0x0D: continue
            case 0x5D, 0x7D: if let comma { return comma }
            case 0x22: inString = true
            default: break
            }
            comma = b == 0x2C ? i : nil
        }
        return nil
    }

    /// Calls `body` with each `[ ] { }` outside strings, until it returns false.
    private static func forEachBracket<C: Collection>(_ bytes: C, _ body: (UInt8) -> Bool) where C.Element == UInt8 {
        var inString = false, escaped = false
        for b in bytes {
            if inString {
                if escaped { escaped = false } else if b == 0x5C { escaped = true } else if b == 0x22 { inString = false }
                continue
            }
            switch b {
            case 0x22: inString = true
            case 0x5B, 0x5D, 0x7B, 0x7D: if !body(b) { return }
            default: break
            }
        }
    }
}
