/// Leftmost-longest matching of added tokens (tokenizers' `AddedVocabulary`, Aho-Corasick with
/// `MatchKind::LeftmostLongest`), in memory and time that do not grow with the token count per
/// text position: the contents are sorted and stored in one flat byte array, and a match at a
/// position narrows the range of tokens sharing the text's next byte by binary search, one
/// byte at a time. A text position costs O(L log T) (L = the longest matching prefix, bounded
/// by `TokenizerJSON.maxAddedTokenBytes`), a position whose byte starts no token O(1).
/// A linear scan of every token at every position made 10⁶ added tokens unusable.
struct AddedTokenMatcher {
    /// Token contents in lexicographic byte order, concatenated; token k is
    /// `bytes[starts[k]..<starts[k + 1]]`.
    private let bytes: [UInt8]
    private let starts: [Int]
    private let ids: [Int32]
    /// For each first byte, the range of tokens that begin with it.
    private let byFirstByte: [Range<Int>]

    var isEmpty: Bool { ids.isEmpty }

    /// `tokens` in their tokenizer.json order; of two with equal content the first wins (as the
    /// linear scan's strict "longer than the best so far" did).
    init(_ tokens: [(content: [UInt8], id: Int32)]) {
        let order = tokens.indices.sorted { a, b in
            tokens[a].content.lexicographicallyPrecedes(tokens[b].content) || (tokens[a].content == tokens[b].content && a < b)
        }
        var bytes: [UInt8] = [], starts: [Int] = [], ids: [Int32] = []
        var last: [UInt8]? = nil
        for k in order where !tokens[k].content.isEmpty && tokens[k].content != last {
            last = tokens[k].content
            starts.append(bytes.count)
            bytes += tokens[k].content
            ids.append(tokens[k].id)
        }
        starts.append(bytes.count)
        var ranges = [Range<Int>](repeating: 0..<0, count: 256)
        var k = 0
        while k < ids.count {
            let b = bytes[starts[k]]
            var e = k
            while e < ids.count && bytes[starts[e]] == b { e += 1 }
            ranges[Int(b)] = k..<e
            k = e
        }
        self.bytes = bytes
        self.starts = starts
        self.ids = ids
        self.byFirstByte = ranges
    }

    private func length(_ k: Int) -> Int { starts[k + 1] - starts[k] }

    /// The longest token that `text[i...]` begins with: its length and id.
    func longestMatch(_ text: [UInt8], at i: Int) -> (length: Int, id: Int32)? {
        var range = byFirstByte[Int(text[i])]
        var best: (length: Int, id: Int32)? = nil
        var depth = 1  // every token in `range` begins with text[i..<i+depth]
        while !range.isEmpty {
            // A token equal to the shared prefix sorts first in the range.
            if length(range.lowerBound) == depth {
                best = (depth, ids[range.lowerBound])
                range = (range.lowerBound + 1)..<range.upperBound
            }
            guard i + depth < text.count, !range.isEmpty else { break }
            let c = text[i + depth]
            // Every token left is longer than `depth`; narrow to those whose next byte is c.
            let lo = partition(range, depth) { $0 < c }, hi = partition(lo..<range.upperBound, depth) { $0 <= c }
            range = lo..<hi
            depth += 1
        }
        return best
    }

    /// First index in `range` whose byte at `depth` does not satisfy `below` (sorted order).
    private func partition(_ range: Range<Int>, _ depth: Int, _ below: (UInt8) -> Bool) -> Int {
        var lo = range.lowerBound, hi = range.upperBound
        while lo < hi {
            let mid = (lo + hi) / 2
            if below(bytes[starts[mid] + depth]) { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}
