/// The pre-tokenizer regexes of byte-level BPE tokenizers, matched by hand with exactly the
/// semantics Oniguruma gives them in huggingface/tokenizers (`Split` with behaviour `Isolated`:
/// every match is a piece, and so is every stretch of text between matches).
///
/// Supported are patterns built from these alternatives, which covers GPT-2
/// (`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`), Llama-3
/// (`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`)
/// and Qwen2 (the same with `\p{N}`). Any other alternative is refused when the tokenizer loads,
/// naming it, instead of splitting differently from the reference.
///
/// Why by hand rather than NSRegularExpression: ICU and Oniguruma disagree on details (`\s`
/// membership, case folding), and a matcher over Unicode scalars with the semantics written out
/// below is both checkable against tokenizers' fixtures and several times faster.
/// Classes follow Oniguruma's Unicode definitions: `\s` = White_Space, `\p{L}` = L*, `\p{N}` = N*;
/// `(?i:…)` folds case as Unicode simple case folding does for these letters (`s` also matches
/// U+017F LATIN SMALL LETTER LONG S).
public struct PreTokenizerRegex: Sendable {
    enum Alternative: Sendable, Equatable {
        case literal(String, caseInsensitive: Bool)   // 's  're …
        case optionalSpaceRun(CharClass)              // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
        case optionalSpaceOtherNewlines               // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        case optionalPrefixLetters                    // `[^\r\n\p{L}\p{N}]?\p{L}+`
        case numbers(max: Int)                        // `\p{N}{1,n}`, `\p{N}`
        case spacesThenNewlines                       // `\s*[\r\n]+`
        case spacesNotBeforeNonSpace                  // `\s+(?!\S)`
        case spaces                                   // `\s+`
    }

    enum CharClass: Sendable, Equatable { case letter, number, other }

    let alternatives: [Alternative]
    public let pattern: String

    public static let gpt2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

    /// Parses `pattern` into known alternatives; throws naming the first unknown one.
    public init(pattern: String) throws {
        self.pattern = pattern
        var alts: [Alternative] = []
        for part in Self.topLevelAlternatives(pattern) {
            if part.hasPrefix("(?i:") && part.hasSuffix(")") {
                for inner in Self.topLevelAlternatives(String(part.dropFirst(4).dropLast())) {
                    guard let lit = Self.literal(inner) else { throw Unsupported(part: part) }
                    alts.append(.literal(lit, caseInsensitive: true))
                }
                continue
            }
            if let lit = Self.literal(part) { alts.append(.literal(lit, caseInsensitive: false)); continue }
            switch part {
            case " ?\\p{L}+": alts.append(.optionalSpaceRun(.letter))
            case " ?\\p{N}+": alts.append(.optionalSpaceRun(.number))
            case " ?[^\\s\\p{L}\\p{N}]+": alts.append(.optionalSpaceRun(.other))
            case " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*": alts.append(.optionalSpaceOtherNewlines)
            case "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+": alts.append(.optionalPrefixLetters)
            case "\\p{N}": alts.append(.numbers(max: 1))
            case "\\s*[\\r\\n]+": alts.append(.spacesThenNewlines)
            case "\\s+(?!\\S)": alts.append(.spacesNotBeforeNonSpace)
            case "\\s+": alts.append(.spaces)
            default:
                if part.hasPrefix("\\p{N}{1,") && part.hasSuffix("}"), let n = Int(part.dropFirst(8).dropLast()), n >= 1 {
                    alts.append(.numbers(max: n))
                } else {
                    throw Unsupported(part: part)
                }
            }
        }
        alternatives = alts
    }

    public struct Unsupported: Error { public let part: String }

    /// `'s`-style literals: an apostrophe and ASCII letters.
    private static func literal(_ s: String) -> String? {
        guard s.count >= 2, s.first == "'", s.dropFirst().allSatisfy({ $0.isASCII && $0.isLetter }) else { return nil }
        return s
    }

    /// Splits on `|` outside parentheses and brackets (escapes skipped).
    static func topLevelAlternatives(_ p: String) -> [String] {
        var parts: [String] = [], cur = "", depth = 0, inClass = false, escaped = false
        for ch in p {
            if escaped { cur.append(ch); escaped = false; continue }
            switch ch {
            case "\\": escaped = true; cur.append(ch)
            case "[" where !inClass: inClass = true; cur.append(ch)
            case "]" where inClass: inClass = false; cur.append(ch)
            case "(" where !inClass: depth += 1; cur.append(ch)
            case ")" where !inClass: depth -= 1; cur.append(ch)
            case "|" where !inClass && depth == 0: parts.append(cur); cur = ""
            default: cur.append(ch)
            }
        }
        parts.append(cur)
        return parts
    }

    // MARK: matching

    @inline(__always) static func isSpace(_ c: Unicode.Scalar) -> Bool { c.properties.isWhitespace }
    @inline(__always) static func isLetter(_ c: Unicode.Scalar) -> Bool {
        switch c.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }
    @inline(__always) static func isNumber(_ c: Unicode.Scalar) -> Bool {
        switch c.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }
    @inline(__always) static func isOther(_ c: Unicode.Scalar) -> Bool { !isSpace(c) && !isLetter(c) && !isNumber(c) }
    @inline(__always) static func isNewline(_ c: Unicode.Scalar) -> Bool { c == "\r" || c == "\n" }

    static func inClass(_ c: Unicode.Scalar, _ k: CharClass) -> Bool {
        switch k {
        case .letter: return isLetter(c)
        case .number: return isNumber(c)
        case .other: return isOther(c)
        }
    }

    /// Scalars equal under the (?i) folding used for contraction letters.
    static func foldEqual(_ a: Unicode.Scalar, _ pattern: Unicode.Scalar) -> Bool {
        if a == pattern { return true }
        let lower = Character(pattern).lowercased(), upper = Character(pattern).uppercased()
        if String(a) == lower || String(a) == upper { return true }
        return (pattern == "s" || pattern == "S") && a == "\u{017F}"
    }

    /// Length (in scalars) of the alternative's match at `i`, or nil.
    func match(_ alt: Alternative, _ s: [Unicode.Scalar], _ i: Int) -> Int? {
        let n = s.count
        func run(from j: Int, _ pred: (Unicode.Scalar) -> Bool) -> Int {
            var k = j
            while k < n && pred(s[k]) { k += 1 }
            return k
        }
        switch alt {
        case .literal(let lit, let ci):
            let ls = Array(lit.unicodeScalars)
            guard i + ls.count <= n else { return nil }
            for (k, c) in ls.enumerated() where !(ci ? Self.foldEqual(s[i + k], c) : s[i + k] == c) { return nil }
            return ls.count
        case .optionalSpaceRun(let k):
            if s[i] == " ", i + 1 < n, Self.inClass(s[i + 1], k) { return run(from: i + 1) { Self.inClass($0, k) } - i }
            if Self.inClass(s[i], k) { return run(from: i) { Self.inClass($0, k) } - i }
            return nil
        case .optionalSpaceOtherNewlines:
            var j: Int
            if s[i] == " ", i + 1 < n, Self.isOther(s[i + 1]) { j = run(from: i + 1, Self.isOther) }
            else if Self.isOther(s[i]) { j = run(from: i, Self.isOther) }
            else { return nil }
            j = run(from: j, Self.isNewline)
            return j - i
        case .optionalPrefixLetters:
            let c = s[i]
            if !Self.isNewline(c) && !Self.isLetter(c) && !Self.isNumber(c), i + 1 < n, Self.isLetter(s[i + 1]) {
                return run(from: i + 1, Self.isLetter) - i
            }
            if Self.isLetter(c) { return run(from: i, Self.isLetter) - i }
            return nil
        case .numbers(let maxCount):
            var j = i
            while j < n && j - i < maxCount && Self.isNumber(s[j]) { j += 1 }
            return j > i ? j - i : nil
        case .spacesThenNewlines:
            // Greedy \s* backtracks to the last \r or \n of the whitespace run; [\r\n]+ then
            // covers it (the run ends there or continues with non-newline whitespace).
            let end = run(from: i, Self.isSpace)
            var k = end - 1
            while k >= i && !Self.isNewline(s[k]) { k -= 1 }
            return k >= i ? k + 1 - i : nil
        case .spacesNotBeforeNonSpace:
            // Greedy \s+ then (?!\S): the whole run at the end of text, else the run minus its
            // last scalar (which is whitespace, so the lookahead holds), if that is non-empty.
            let end = run(from: i, Self.isSpace)
            if end == i { return nil }
            if end == n { return end - i }
            return end - 1 > i ? end - 1 - i : nil
        case .spaces:
            let end = run(from: i, Self.isSpace)
            return end > i ? end - i : nil
        }
    }

    /// Splits `text` into pieces (Isolated: matches and the gaps between them), in order.
    public func split(_ text: String) -> [String] {
        let s = Array(text.unicodeScalars)
        var pieces: [String] = []
        var i = 0, gapStart = 0
        func emit(_ a: Int, _ b: Int) {
            var str = ""
            str.unicodeScalars.append(contentsOf: s[a..<b])
            pieces.append(str)
        }
        while i < s.count {
            var length: Int? = nil
            for alt in alternatives {
                if let m = match(alt, s, i) { length = m; break }
            }
            if let length {
                if gapStart < i { emit(gapStart, i) }
                emit(i, i + length)
                i += length
                gapStart = i
            } else {
                i += 1
            }
        }
        if gapStart < s.count { emit(gapStart, s.count) }
        return pieces
    }
}
