import TensorCore

/// Per-layer key/value history of a batch of sequences, for incremental decoding.
///
/// Row r's keys for layer l and kv head h are `keys[l][((r·kvHeads + h)·capacity + position)·headDim ...]`:
/// head by head, each head's positions contiguous, so attention streams one head's keys (and
/// values) in order instead of picking headDim floats out of every kvDim-float position (rows
/// far apart, which the hardware prefetchers missed). `length[r]` positions are filled. Rows are independent: prompts of different
/// lengths decode together, each at its own position. All of it is allocated once, here;
/// `workspace` holds the activations of the calls that extend it.
public final class KVCache {
    public let layers: Int, rows: Int, capacity: Int, kvDim: Int, kvHeads: Int, headDim: Int
    public private(set) var keys: [UnsafeMutablePointer<Float>]
    public private(set) var values: [UnsafeMutablePointer<Float>]
    public var length: [Int]
    /// Scratch of the decode calls on this cache (activations, attention scores, logits).
    public let workspace = DecodeWorkspace()

    public init(layers: Int, rows: Int, capacity: Int, kvDim: Int, kvHeads: Int) {
        precondition(kvHeads > 0 && kvDim % kvHeads == 0, "KVCache: \(kvDim) floats do not split into \(kvHeads) heads")
        self.layers = layers; self.rows = rows; self.capacity = capacity; self.kvDim = kvDim
        self.kvHeads = kvHeads; headDim = kvDim / kvHeads
        let n = max(rows * capacity * kvDim, 1)
        KVCache.checkFits(floats: 2 * layers * n, rows: rows, capacity: capacity)
        keys = (0..<layers).map { _ in CheckedAllocation.floats(n, for: "the KV cache (keys)") }
        values = (0..<layers).map { _ in CheckedAllocation.floats(n, for: "the KV cache (values)") }
        length = [Int](repeating: 0, count: rows)
    }

    /// A cache larger than the memory the kernel can still give is refused before it is
    /// allocated: the allocation itself succeeds (overcommit) and filling it brought the OOM
    /// killer — SIGKILL, no message, a half-written run (8,192 rollouts of a generation).
    static func checkFits(floats: Int, rows: Int, capacity: Int) {
        let (bytes, overflow) = floats.multipliedReportingOverflow(by: MemoryLayout<Float>.stride)
        guard overflow || bytes > 256 << 20 else { return }   // small caches: not worth reading /proc
        guard let available = MemoryBudget.availableBytes(), overflow || bytes > available else { return }
        CheckedAllocation.failureHandler("out of memory: the KV cache for \(rows) sequences × \(capacity) positions needs \(CheckedAllocation.describe(bytes: overflow ? Int.max : bytes)), more than the \(CheckedAllocation.describe(bytes: available)) available (fewer rollouts per generation, a smaller batch or a shorter max_completion_length)")
    }

    deinit {
        keys.forEach { CheckedAllocation.free($0) }
        values.forEach { CheckedAllocation.free($0) }
    }

    /// Key of kv head `head` at `position`: headDim floats; the next position's follow.
    @inline(__always) public func key(_ layer: Int, row: Int, head: Int, position: Int) -> UnsafeMutablePointer<Float> {
        keys[layer] + ((row * kvHeads + head) * capacity + position) * headDim
    }
    @inline(__always) public func value(_ layer: Int, row: Int, head: Int, position: Int) -> UnsafeMutablePointer<Float> {
        values[layer] + ((row * kvHeads + head) * capacity + position) * headDim
    }
}

/// A run of new tokens for one cache row: `tokens` go at positions length[row]…
public struct DecodeSegment: Sendable {
    public var row: Int
    public var tokens: [Int32]
    public init(row: Int, tokens: [Int32]) { self.row = row; self.tokens = tokens }
}

extension KVCache {
    /// The ids of every segment's new tokens, concatenated, and their absolute positions
    /// (each row continues where its cache ends); `model` names the caller in the error.
    public func newTokens(_ segments: [DecodeSegment], model: String) -> (ids: [Int32], positions: [Int32]) {
        var ids: [Int32] = [], positions: [Int32] = []
        for s in segments {
            precondition(length[s.row] + s.tokens.count <= capacity,
                         "\(model).decode: row \(s.row) would exceed the cache capacity \(capacity)")
            ids += s.tokens
            positions += (0..<s.tokens.count).map { Int32(length[s.row] + $0) }
        }
        return (ids, positions)
    }
}

/// Which new positions get logits: all of them (checking against recomputation), or only
/// each segment's last (generation: the LM head, a third of a small model's decode FLOPs,
/// is skipped for the rest of a prompt).
public enum DecodeLogits: Sendable { case everyPosition, lastPosition }

/// Models that can extend cached sequences without recomputing the prefix. `decode`
/// appends each segment's tokens to its row (prefill: a whole prompt; generation: one token
/// per row) and returns logits, segments concatenated: [Σn, V] for every new position or
/// [segments, V] for each segment's last. All projections run as one GEMM over every new
/// token of every segment. The logits live in `cache.workspace`: valid until the next
/// decode on that cache, read in place (no copy per token).
public protocol IncrementalDecoder: LanguageModel {
    func makeCache(rows: Int, capacity: Int) -> KVCache
    func decode(_ segments: [DecodeSegment], cache: KVCache, logitsOf which: DecodeLogits) -> UnsafeBufferPointer<Float>
}

extension IncrementalDecoder {
    /// Logits of every new position, as an array.
    public func decode(_ segments: [DecodeSegment], cache: KVCache) -> [Float] {
        Array(decode(segments, cache: cache, logitsOf: .everyPosition))
    }
}

/// Row bookkeeping shared by the decoders.
public enum DecodeRows {
    /// Copies each segment's last row of `x` ([Σn, dim]) to consecutive rows of `out`.
    public static func gatherLast(_ segments: [DecodeSegment], from x: UnsafePointer<Float>, dim: Int,
                                  into out: UnsafeMutablePointer<Float>) {
        var end = 0
        for (i, s) in segments.enumerated() {
            end += s.tokens.count
            (out + i * dim).update(from: x + (end - 1) * dim, count: dim)
        }
    }

    /// Rows that get logits under `which`.
    public static func logitRows(_ segments: [DecodeSegment], total: Int, _ which: DecodeLogits) -> Int {
        which == .everyPosition ? total : segments.count
    }
}
