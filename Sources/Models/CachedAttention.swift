#if canImport(Glibc)
import Glibc
#endif
import TensorCore

/// Causal attention of new queries against a row's cache, per head, as two GEMMs:
/// scores [n, L] = q·Kᵀ over the filled cache (one query: `DecodeScores`, the same sums), masked so new token i sees positions
/// ≤ start + i, softmax, then out = P·V. q rows have stride `ldq`; heads share kv heads in
/// groups (GQA).
public enum CachedAttention {
    /// `scores` holds n·(start + n) floats.
    public static func forward(out: UnsafeMutablePointer<Float>, ldo: Int, q: UnsafePointer<Float>, ldq: Int,
                               cache: KVCache, layer: Int, row: Int, start: Int, count n: Int,
                               heads: Int, kvHeads: Int, headDim hd: Int, scores: UnsafeMutablePointer<Float>) {
        let L = start + n
        let scale = 1 / Float(hd).squareRoot()
        precondition(cache.kvHeads == kvHeads && cache.headDim == hd, "CachedAttention: a cache of \(cache.kvHeads) heads × \(cache.headDim)")
        let ld = hd  // a head's positions are contiguous in the cache (`KVCache`)
        for h in 0..<heads {
            let kh = h / (heads / kvHeads)
            let kh0 = cache.key(layer, row: row, head: kh, position: 0), vh0 = cache.value(layer, row: row, head: kh, position: 0)
            if n == 1 && DecodeScores.sameSumsAsBLAS(positions: L, dim: hd) {  // OpenBLAS's small kernel's sums without the call
                // The head's values are fetched while its keys are read, the next head's keys
                // while its values are: every pass over the cache then finds its rows in cache.
                DecodeScores.forward(scores: scores, q: q + h * hd, keys: kh0, stride: ld, count: L, dim: hd, alpha: scale,
                                     prefetch: vh0)
            } else {
                BLAS.gemm(transA: false, transB: true, m: n, n: L, k: hd, alpha: scale,
                          a: q + h * hd, lda: ldq, b: kh0, ldb: ld, beta: 0, c: scores, ldc: L)
            }
            for i in 0..<n {
                let r = scores + i * L, last = start + i
                var m = -Float.infinity
                for j in 0...last { m = max(m, r[j]) }
                var s: Float = 0
                for j in 0...last { r[j] = expf(r[j] - m); s += r[j] }
                let inv = 1 / s
                for j in 0..<L { r[j] = j <= last ? r[j] * inv : 0 }
            }
            if n == 1 && hd * L <= 1_000_000 {  // OpenBLAS's small kernel's sums without the call (WeightedRowSum)
                WeightedRowSum.forward(out: out + h * hd, weights: scores, rows: vh0, stride: ld, count: L, dim: hd,
                                       prefetch: h + 1 < heads ? cache.key(layer, row: row, head: (h + 1) / (heads / kvHeads), position: 0) : nil)
            } else {
                BLAS.gemm(transA: false, transB: false, m: n, n: hd, k: L,
                          a: scores, lda: L, b: vh0, ldb: ld, beta: 0, c: out + h * hd, ldc: ldo)
            }
        }
    }

    /// The same with its own scores buffer.
    public static func forward(out: UnsafeMutablePointer<Float>, ldo: Int, q: UnsafePointer<Float>, ldq: Int,
                               cache: KVCache, layer: Int, row: Int, start: Int, count n: Int,
                               heads: Int, kvHeads: Int, headDim hd: Int) {
        let scores = CheckedAllocation.floats(n * (start + n), for: "attention scores")
        defer { CheckedAllocation.free(scores) }
        forward(out: out, ldo: ldo, q: q, ldq: ldq, cache: cache, layer: layer, row: row, start: start, count: n,
                heads: heads, kvHeads: kvHeads, headDim: hd, scores: scores)
    }

    /// Floats of scores scratch `appendAndAttend` needs for `segments` on `cache`.
    public static func scratchFloats(_ segments: [DecodeSegment], cache: KVCache) -> Int {
        Parallel.threads * (segments.map(\.tokens.count).max() ?? 0) * cache.capacity
    }

    /// One layer's attention for every segment: each segment's new keys and values (rows of
    /// `k`, `v` with stride `ldkv`, segments concatenated) go into its cache row, then its
    /// queries attend. Segments are independent rows, so they are spread over the threads,
    /// each with its own part of `scratch` (`scratchFloats`).
    public static func appendAndAttend(_ segments: [DecodeSegment], cache: KVCache, layer: Int,
                                       q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                       ldkv: Int, out: UnsafeMutablePointer<Float>, ldo: Int,
                                       heads: Int, kvHeads: Int, headDim: Int, scratch: UnsafeMutablePointer<Float>) {
        var offsets = [Int](repeating: 0, count: segments.count)
        for i in 1..<max(segments.count, 1) { offsets[i] = offsets[i - 1] + segments[i - 1].tokens.count }
        let perThread = (segments.map(\.tokens.count).max() ?? 0) * cache.capacity
        let threads = Parallel.threads, hd = cache.headDim
        Parallel.onEachThread { t in
            var i = t
            while i < segments.count {
                let s = segments[i], start = cache.length[s.row], o = offsets[i]
                for j in 0..<s.tokens.count {
                    for kh in 0..<cache.kvHeads {
                        cache.key(layer, row: s.row, head: kh, position: start + j).update(from: k + (o + j) * ldkv + kh * hd, count: hd)
                        cache.value(layer, row: s.row, head: kh, position: start + j).update(from: v + (o + j) * ldkv + kh * hd, count: hd)
                    }
                }
                forward(out: out + o * ldo, ldo: ldo, q: q + o * ldq, ldq: ldq, cache: cache, layer: layer, row: s.row,
                        start: start, count: s.tokens.count, heads: heads, kvHeads: kvHeads, headDim: headDim,
                        scores: scratch + t * perThread)
                i += threads
            }
        }
    }
}
