import COpenBLAS

/// Attention scores of one new query against a row's cached keys: s[j] = alpha · (q · K_j)
/// for j in 0..<L, the product `CachedAttention` otherwise runs as
/// `cblas_sgemm(RowMajor, NoTrans, Trans, 1, L, d, alpha, q, …, K, …, 0, s, …)`.
///
/// Why not that call: a decode step makes one per row, head and layer (1,152 per step for
/// 32 rows of gpt2-mini), each a few thousand multiply-adds, so the call's own set-up costs
/// about as much as its arithmetic. The sums here are the ones OpenBLAS 0.3.21 computes for
/// that call, bit for bit (DecodeScoresTests against `cblas_sgemm`): the row-major call is its
/// column-major TN product with M = L, N = 1, which at most 100³ multiply-adds, M·N ≤ 1200 and
/// K ≥ 32 runs the small-matrix kernel (`sgemm_small_kernel_b0_tn`, SkylakeX/Cooperlake).
/// That kernel keeps 16 lanes per key, lane l a fused multiply-add chain over d = l, l + 16, …
/// (lanes past a remainder add 0·0), and reduces them by two trees: keys in groups of four
/// (j < L rounded down to 4) by ((l0+l1)+(l2+l3)) within each 4-lane quarter, then
/// (q0+q1)+(q2+q3); the other keys by GCC's `_mm512_reduce_add_ps` (halves of 8, of 4, then
/// (t0+t2)+(t1+t3)); each sum times alpha. `sameSumsAsBLAS` says where that holds; elsewhere
/// the caller keeps the OpenBLAS call.
public enum DecodeScores {
    public typealias F16 = SIMD16<Float>

    /// Whether the call above runs OpenBLAS's small TN kernel, whose sums `forward` reproduces.
    public static func sameSumsAsBLAS(positions L: Int, dim d: Int) -> Bool {
        DecodeGEMM.verifiedBuild && L >= 1 && d >= 32 && L <= 1200 && L * d <= 1_000_000
    }

    /// `scores[j]` for j in 0..<L; key j at `keys + j·stride`, d floats each. With `prefetch`,
    /// the d floats at `prefetch + j·stride` are prefetched beside key j (the values the
    /// attention reads next: cached rows far apart, which the hardware prefetchers miss).
    public static func forward(scores: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>, keys: UnsafePointer<Float>,
                               stride: Int, count L: Int, dim d: Int, alpha: Float, prefetch: UnsafePointer<Float>? = nil) {
        let ahead = prefetch ?? keys
        let full = d / 16 * 16, rest = d - full
        // The query's remainder, zero past d (the kernel's masked load).
        var qTail = F16(repeating: 0)
        for l in 0..<rest { qTail[l] = q[full + l] }

        @inline(__always) func lanes(_ j: Int) -> F16 {
            let k = keys + j * stride, p = ahead + j * stride
            var o = 0
            while o < d { sftblas_prefetch(p + o); o += 16 }
            var acc = F16(repeating: 0)
            var i = 0
            while i < full {
                acc = acc.addingProduct(load(k + i), load(q + i))
                i += 16
            }
            if rest > 0 {
                var kTail = F16(repeating: 0)
                for l in 0..<rest { kTail[l] = k[full + l] }
                acc = acc.addingProduct(kTail, qTail)
            }
            return acc
        }

        let grouped = L / 4 * 4
        var j = 0
        while j < grouped {
            for g in 0..<4 { scores[j + g] = alpha * quarterTree(lanes(j + g)) }
            j += 4
        }
        while j < L {
            scores[j] = alpha * halvingTree(lanes(j))
            j += 1
        }
    }

    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> F16 {
        UnsafeRawPointer(p).loadUnaligned(as: F16.self)
    }

    /// REDUCE_4 of the kernel, one key's column: each 128-bit quarter as (l0+l1)+(l2+l3),
    /// then (q0+q1)+(q2+q3).
    @inline(__always) static func quarterTree(_ a: F16) -> Float {
        let pairs = a.evenHalf + a.oddHalf            // l0+l1, l2+l3 of each quarter
        let quarters = pairs.evenHalf + pairs.oddHalf  // q0 … q3
        let halves = quarters.evenHalf + quarters.oddHalf
        return halves[0] + halves[1]
    }

    /// GCC's `_mm512_reduce_add_ps`: upper 8 + lower 8, upper 4 + lower 4, then
    /// (t0 + t2) + (t1 + t3).
    @inline(__always) static func halvingTree(_ a: F16) -> Float {
        let h = a.highHalf + a.lowHalf
        let t = h.highHalf + h.lowHalf
        let u = t.lowHalf + t.highHalf
        return u[0] + u[1]
    }
}
