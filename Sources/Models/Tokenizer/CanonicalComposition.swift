/// NFC as `tokenizers` computes it (Unicode's canonical decomposition, canonical ordering, then
/// composition), for tokenizers whose normalizer is NFC (Qwen2's).
///
/// Foundation's `precomposedStringWithCanonicalMapping` works on UTF-16 and composes a
/// supplementary-plane character followed by a combining mark as if it were the BMP character
/// with the same low 16 bits (U+10041 U+0301 became U+00C1 Á: 68 such characters in Linear B,
/// Aegean and Greek acrophonic numbers, Ugaritic, Old Persian, Deseret — found against tokenizers
/// 0.23 by a sweep of every assigned code point). The standard library's own NFC
/// (`_nfcCodeUnits`: public though underscored, what `String` comparison uses) has no such fault,
/// but leaves the two marks that U+0F73, U+0F75 and U+0F81 decompose into out of canonical order
/// when another mark follows (U+0F73 U+0F73 gave 0F71 0F72 0F71 0F72, not 0F71 0F71 0F72 0F72),
/// so each run of non-starters is put in canonical order after it. Sorting the run cannot
/// change what composes: those Tibetan marks (classes 129, 130, 132) compose with nothing.
enum CanonicalComposition {
    static func nfc(_ s: String) -> String {
        if s.utf8.allSatisfy({ $0 < 0x80 }) { return s }  // ASCII is NFC
        let composed = String(decoding: s._nfcCodeUnits, as: UTF8.self)
        var scalars = Array(composed.unicodeScalars)
        var changed = false, i = 0
        while i < scalars.count {
            guard combiningClass(scalars[i]) > 0 else { i += 1; continue }
            var end = i + 1
            while end < scalars.count && combiningClass(scalars[end]) > 0 { end += 1 }
            if end - i > 1 { changed = orderByClass(&scalars, i..<end) || changed }
            i = end
        }
        guard changed else { return composed }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: scalars)
        return String(out)
    }

    static func combiningClass(_ c: Unicode.Scalar) -> UInt8 {
        c.value < 0x300 ? 0 : c.properties.canonicalCombiningClass.rawValue  // no mark comes before U+0300
    }

    /// A stable insertion sort of `range` by combining class (runs are a few marks long);
    /// returns whether anything moved.
    static func orderByClass(_ scalars: inout [Unicode.Scalar], _ range: Range<Int>) -> Bool {
        var moved = false
        for k in (range.lowerBound + 1)..<range.upperBound {
            let c = scalars[k], cc = combiningClass(c)
            var j = k
            while j > range.lowerBound && combiningClass(scalars[j - 1]) > cc {
                scalars[j] = scalars[j - 1]
                j -= 1
            }
            if j != k { scalars[j] = c; moved = true }
        }
        return moved
    }
}
