import TensorCore

/// Per-layer key/value history of a batch of sequences, for incremental decoding.
///
/// Row r's keys for layer l are `keys[l][r·capacity·kvDim ...]`, one kvDim vector per
/// position; `length[r]` positions are filled. Rows are independent: prompts of different
/// lengths decode together, each at its own position.
public final class KVCache {
    public let layers: Int, rows: Int, capacity: Int, kvDim: Int
    public private(set) var keys: [UnsafeMutablePointer<Float>]
    public private(set) var values: [UnsafeMutablePointer<Float>]
    public var length: [Int]

    public init(layers: Int, rows: Int, capacity: Int, kvDim: Int) {
        self.layers = layers; self.rows = rows; self.capacity = capacity; self.kvDim = kvDim
        let n = max(rows * capacity * kvDim, 1)
        keys = (0..<layers).map { _ in CheckedAllocation.floats(n, for: "the KV cache (keys)") }
        values = (0..<layers).map { _ in CheckedAllocation.floats(n, for: "the KV cache (values)") }
        length = [Int](repeating: 0, count: rows)
    }

    deinit {
        keys.forEach { CheckedAllocation.free($0) }
        values.forEach { CheckedAllocation.free($0) }
    }

    @inline(__always) public func key(_ layer: Int, row: Int, position: Int) -> UnsafeMutablePointer<Float> {
        keys[layer] + (row * capacity + position) * kvDim
    }
    @inline(__always) public func value(_ layer: Int, row: Int, position: Int) -> UnsafeMutablePointer<Float> {
        values[layer] + (row * capacity + position) * kvDim
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

/// Models that can extend cached sequences without recomputing the prefix. `decode`
/// appends each segment's tokens to its row (prefill: a whole prompt; generation: one token
/// per row) and returns the logits of every new position, segments concatenated: [Σn, V].
/// All projections run as one GEMM over every new token of every segment.
public protocol IncrementalDecoder: LanguageModel {
    func makeCache(rows: Int, capacity: Int) -> KVCache
    func decode(_ segments: [DecodeSegment], cache: KVCache) -> [Float]
}

/// Causal attention of new queries against a row's cache, per head, as two GEMMs:
/// scores [n, L] = q·Kᵀ over the filled cache, masked so new token i sees positions
/// ≤ start + i, softmax, then out = P·V. q rows have stride `ldq`; heads share kv heads in
/// groups (GQA).
public enum CachedAttention {
    public static func forward(out: UnsafeMutablePointer<Float>, ldo: Int, q: UnsafePointer<Float>, ldq: Int,
                               cache: KVCache, layer: Int, row: Int, start: Int, count n: Int,
                               heads: Int, kvHeads: Int, headDim hd: Int) {
        let L = start + n
        let scale = 1 / Float(hd).squareRoot()
        let scores = CheckedAllocation.floats(n * L, for: "attention scores")
        defer { CheckedAllocation.free(scores) }
        let k0 = cache.key(layer, row: row, position: 0), v0 = cache.value(layer, row: row, position: 0)
        for h in 0..<heads {
            let kh = h / (heads / kvHeads)
            BLAS.gemm(transA: false, transB: true, m: n, n: L, k: hd, alpha: scale,
                      a: q + h * hd, lda: ldq, b: k0 + kh * hd, ldb: cache.kvDim, beta: 0, c: scores, ldc: L)
            for i in 0..<n {
                let r = scores + i * L, last = start + i
                var m = -Float.infinity
                for j in 0...last { m = max(m, r[j]) }
                var s: Float = 0
                for j in 0...last { r[j] = expf(r[j] - m); s += r[j] }
                let inv = 1 / s
                for j in 0..<L { r[j] = j <= last ? r[j] * inv : 0 }
            }
            BLAS.gemm(transA: false, transB: false, m: n, n: hd, k: L,
                      a: scores, lda: L, b: v0 + kh * hd, ldb: cache.kvDim, beta: 0, c: out + h * hd, ldc: ldo)
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
