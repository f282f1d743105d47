import Foundation

/// The BPE model of a `tokenizer.json` (huggingface/tokenizers `models/bpe/model.rs` and
/// `word.rs`): a vocabulary of byte-level strings and ranked merges.
///
/// A pre-token's bytes start as one symbol each; then, as tokenizers' `Word::merge_all` does
/// with its (rank, position) min-heap, the lowest-ranked adjacent pair is merged — the leftmost
/// one on ties — until no adjacent pair has a merge. With `ignore_merges` (Llama-3) a pre-token
/// that is itself in the vocabulary is emitted whole first.
final class BPEModel: @unchecked Sendable {
    let vocab: [String: Int32]
    let ignoreMerges: Bool
    let unkId: Int32?
    let fuseUnk: Bool
    let byteFallback: Bool
    /// (left id, right id) packed in a UInt64 → (rank, merged id).
    private let merges: [UInt64: (rank: Int32, id: Int32)]
    /// Id of the single-byte token for each byte (-1 if the vocabulary lacks it).
    private let byteIds: [Int32]
    private var cache: [[UInt8]: [Int32]] = [:]
    private let lock = NSLock()

    init(vocab: [String: Int32], merges pairs: [(String, String)], ignoreMerges: Bool,
         unkToken: String?, fuseUnk: Bool, byteFallback: Bool, source: String) throws {
        self.vocab = vocab
        self.ignoreMerges = ignoreMerges
        self.fuseUnk = fuseUnk
        self.byteFallback = byteFallback
        if let u = unkToken {
            guard let id = vocab[u] else { throw ModelError("\(source): field \"model.unk_token\" \"\(u)\" is not in model.vocab") }
            unkId = id
        } else {
            unkId = nil
        }
        var m: [UInt64: (rank: Int32, id: Int32)] = [:]
        m.reserveCapacity(pairs.count)
        for (rank, (a, b)) in pairs.enumerated() {
            guard let ia = vocab[a], let ib = vocab[b] else {
                throw ModelError("\(source): field \"model.merges\" entry \(rank) (\"\(a)\" \"\(b)\") uses a token that is not in model.vocab")
            }
            guard let merged = vocab[a + b] else {
                throw ModelError("\(source): field \"model.merges\" entry \(rank) makes \"\(a + b)\", which is not in model.vocab")
            }
            let key = Self.key(ia, ib)
            if m[key] == nil { m[key] = (Int32(rank), merged) }  // tokenizers keeps the first rank
        }
        merges = m
        byteIds = (0..<256).map { vocab[String(ByteLevel.characters[$0])] ?? -1 }
    }

    @inline(__always) static func key(_ a: Int32, _ b: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
    }

    /// Token ids of one pre-token, given as raw bytes (the byte-level mapping is implicit).
    func tokenize(_ bytes: [UInt8]) -> [Int32] {
        lock.lock()
        if let hit = cache[bytes] { lock.unlock(); return hit }
        lock.unlock()
        let ids = compute(bytes)
        lock.lock()
        if cache.count > 100_000 { cache.removeAll(keepingCapacity: true) }
        cache[bytes] = ids
        lock.unlock()
        return ids
    }

    private func compute(_ bytes: [UInt8]) -> [Int32] {
        if ignoreMerges, let whole = vocab[ByteLevel.encode(bytes)] { return [whole] }
        // Initial symbols, one per byte-level character (= per byte).
        var symbols: [Int32] = []
        symbols.reserveCapacity(bytes.count)
        var unkRun = false
        for b in bytes {
            let id = byteIds[Int(b)]
            if id >= 0 { symbols.append(id); unkRun = false; continue }
            if byteFallback, let fb = vocab[String(format: "<0x%02X>", b)] { symbols.append(fb); unkRun = false; continue }
            if let u = unkId {
                if !(fuseUnk && unkRun) { symbols.append(u) }
                unkRun = true
            }  // no unk token: tokenizers drops the character
        }
        // Repeatedly merge the lowest-ranked pair (leftmost on ties).
        while symbols.count > 1 {
            var bestRank = Int32.max, bestPos = -1, bestId: Int32 = 0
            for i in 0..<(symbols.count - 1) {
                if let m = merges[Self.key(symbols[i], symbols[i + 1])], m.rank < bestRank {
                    bestRank = m.rank; bestPos = i; bestId = m.id
                }
            }
            if bestPos < 0 { break }
            symbols[bestPos] = bestId
            symbols.remove(at: bestPos + 1)
        }
        return symbols
    }
}
