import Foundation

/// The BPE model of a `tokenizer.json` (huggingface/tokenizers `models/bpe/model.rs` and
/// `word.rs`): a vocabulary of byte-level strings and ranked merges.
///
/// A pre-token's bytes start as one symbol each; then the lowest-ranked adjacent pair is merged
/// — the leftmost one on ties — until no adjacent pair has a merge, exactly as tokenizers'
/// `Word::merge_all` (`models/bpe/word.rs`) does it: a min-heap of (rank, position) candidates
/// over a linked list of symbols, stale candidates skipped when popped. That is O(n log n) in
/// the pre-token's length (a rescan for the best pair after every merge was O(n²): 150,000
/// spaces in one example never finished). With `ignore_merges` (Llama-3) a pre-token that is
/// itself in the vocabulary is emitted whole first.
///
/// Pre-tokens longer than `maxPieceBytes` (only reachable through `tokenize` on standard input or
/// a huge `--prompt`: data lines are at most 1 MiB) are merged in consecutive pieces of that
/// size, which bounds the working memory; tokenizers would merge across the cuts.
final class BPEModel: @unchecked Sendable {
    let vocab: [String: Int32]
    let ignoreMerges: Bool
    let unkId: Int32?
    let fuseUnk: Bool
    let byteFallback: Bool
    /// (left id, right id) packed in a UInt64 → (rank, merged id).
    let merges: [UInt64: (rank: Int32, id: Int32)]
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
            guard let id = vocab[u] else { throw ModelError("\(source): field \"model.unk_token\" \(JSONText.brief(u)) is not in model.vocab") }
            unkId = id
        } else {
            unkId = nil
        }
        var m: [UInt64: (rank: Int32, id: Int32)] = [:]
        m.reserveCapacity(pairs.count)
        for (rank, (a, b)) in pairs.enumerated() {
            guard let ia = vocab[a], let ib = vocab[b] else {
                throw ModelError("\(source): field \"model.merges\" entry \(rank) (\(JSONText.brief(a)) \(JSONText.brief(b))) uses a token that is not in model.vocab")
            }
            guard let merged = vocab[a + b] else {
                throw ModelError("\(source): field \"model.merges\" entry \(rank) makes \(JSONText.brief(a + b)), which is not in model.vocab")
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

    static let maxPieceBytes = 1 << 20
    /// Longer pre-tokens are not cached (as tokenizers' `MAX_LENGTH`), so the cache stays small.
    static let maxCachedBytes = 256

    /// Token ids of one pre-token, given as raw bytes (the byte-level mapping is implicit).
    func tokenize(_ bytes: [UInt8]) -> [Int32] {
        if bytes.count > Self.maxPieceBytes {
            return stride(from: 0, to: bytes.count, by: Self.maxPieceBytes).flatMap {
                compute(Array(bytes[$0..<min(bytes.count, $0 + Self.maxPieceBytes)]))
            }
        }
        if bytes.count > Self.maxCachedBytes { return compute(bytes) }
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
        return mergeAll(symbols)
    }

    /// tokenizers' `Word::merge_all` without dropout: symbols form a linked list (`next`,
    /// `prev`; a merged-away symbol gets `alive = false`), candidates wait in a min-heap by
    /// (rank, position); a popped candidate whose pair no longer makes its token is stale.
    func mergeAll(_ initial: [Int32]) -> [Int32] {
        var ids = initial
        let n = ids.count
        guard n > 1 else { return ids }
        var next = Array(1...n), prev = Array(-1..<(n - 1)), alive = [Bool](repeating: true, count: n)
        var heap = MergeHeap()
        for i in 0..<(n - 1) {
            if let m = merges[Self.key(ids[i], ids[i + 1])] { heap.push(.init(rank: m.rank, pos: Int32(i), id: m.id)) }
        }
        while let top = heap.pop() {
            let pos = Int(top.pos)
            guard alive[pos], next[pos] < n else { continue }
            let right = next[pos]
            guard let m = merges[Self.key(ids[pos], ids[right])], m.id == top.id else { continue }
            ids[pos] = top.id
            alive[right] = false
            next[pos] = next[right]
            if next[right] < n { prev[next[right]] = pos }
            if prev[pos] >= 0, let m = merges[Self.key(ids[prev[pos]], ids[pos])] {
                heap.push(.init(rank: m.rank, pos: Int32(prev[pos]), id: m.id))
            }
            if next[pos] < n, let m = merges[Self.key(ids[pos], ids[next[pos]])] {
                heap.push(.init(rank: m.rank, pos: top.pos, id: m.id))
            }
        }
        return (0..<n).compactMap { alive[$0] ? ids[$0] : nil }
    }
}
