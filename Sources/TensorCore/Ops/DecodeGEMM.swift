import COpenBLAS

/// C[m×n] = A[m×k]·B[k×n] (row-major, B not transposed: GPT-2's [in, out] weights) for the
/// few-row products of decoding (one row per sequence), streaming B straight from memory.
///
/// Why not `cblas_sgemm`: with 32 rows per step OpenBLAS re-packs the whole weight matrix on
/// every call — a pass over memory as long as the arithmetic, not overlapped with it (a third
/// of the GEMM time in batched generation). The arithmetic here is OpenBLAS's own for these
/// shapes, so results are bit-identical: each C element is a chain of fused multiply-adds
/// over k, restarted at every k block of OpenBLAS's level-3 driver (blocks of `q` = 320 while
/// at least 2q remain, a remainder between q and 2q halved and rounded up to `unroll`), the
/// block sums added to C in order (checked against `cblas_sgemm` in DecodeGEMMTests). That
/// holds only where OpenBLAS runs its regular kernel: at most 100³ multiply-adds per call it
/// takes a small-matrix kernel that sums differently, so `sameSumsAsBLAS` says when to use this.
public enum DecodeGEMM {
    public static let q = 320, unroll = 16
    /// The OpenBLAS build and kernel whose sums were reproduced (Debian bookworm's 0.3.21 on a
    /// Cooperlake core); any other build or `OPENBLAS_CORETYPE` keeps every product on OpenBLAS,
    /// so decoding stays bit-identical to `cblas_sgemm` wherever it runs.
    public static let verifiedBuild = BLAS.config.hasPrefix("OpenBLAS 0.3.21 ") && BLAS.coreName == "Cooperlake"

    /// Whether `BLAS.gemm` (as it splits the product over the threads) would run every piece
    /// of an m×n×k product on OpenBLAS's regular kernel, whose sums `forward` reproduces.
    public static func sameSumsAsBLAS(m: Int, n: Int, k: Int) -> Bool {
        let total = m * n * k, threads = BLAS.threads
        guard verifiedBuild, total > 1_000_000 else { return false }
        if threads == 1 || total < 1 << 22 { return true }  // one call
        guard m < n else { return false }                   // split by rows: not a decode step
        // Column pieces of `BLAS.gemm` (multiples of 16): the smallest must stay above 100³.
        return m * k * (n / threads / 16 * 16 - 16) > 1_000_000
    }

    /// The k ranges of OpenBLAS's level-3 driver for an inner dimension of `k`.
    public static func kBlocks(_ k: Int) -> [Range<Int>] {
        var out: [Range<Int>] = [], start = 0
        while start < k {
            var len = k - start
            if len >= 2 * q { len = q } else if len > q { len = (len / 2 + unroll - 1) / unroll * unroll }
            out.append(start..<(start + len))
            start += len
        }
        return out
    }

    public static func forward(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                               b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard m > 0, n > 0 else { return }
        for r in 0..<m { (c + r * ldc).update(repeating: 0, count: n) }
        guard k > 0 else { return }
        let blocks = kBlocks(k)
        Parallel.forRanges(n, minChunk: 48, align: 16) { cols in
            // Panel by panel (16 columns — one cache line per row of B — × one k block), every
            // row group against it while it is in cache; each C element still takes its k
            // blocks' sums in order. The first row group prefetches the next panel, whose rows
            // are a page apart (the hardware prefetchers miss them); the others prefetch their
            // own panel's rows, already in cache (one loop for all: a branch costs more).
            var j = cols.lowerBound
            while j + 16 <= cols.upperBound {
                for (i, kb) in blocks.enumerated() {
                    let next: (panel: UnsafePointer<Float>, rows: Int)
                    if i + 1 < blocks.count {
                        next = (b + blocks[i + 1].lowerBound * ldb + j, blocks[i + 1].count)
                    } else {
                        next = (b + j + 16, j + 32 <= cols.upperBound ? blocks[0].count : 0)
                    }
                    let panel = b + kb.lowerBound * ldb + j
                    let groups = m / 6, ahead = next.rows >= kb.count
                    // Group g prefetches rows (g·count + step) / groups of the next panel: all of
                    // its rows, spread evenly over the groups' steps (a burst would overrun the
                    // cache's outstanding misses). ⌊x·⌈2²⁰/groups⌉ / 2²⁰⌋ is x / groups here.
                    let perRow = ((1 << 20) + groups - 1) / max(groups, 1)
                    var r = 0
                    while r + 6 <= m {
                        block6x16(count: kb.count, a: a + r * lda + kb.lowerBound, lda: lda, b: panel, ldb: ldb,
                                  c: c + r * ldc + j, ldc: ldc, prefetch: ahead ? next.panel : panel,
                                  prefetchFrom: ahead ? r / 6 * kb.count : 0, prefetchScale: ahead ? perRow : 0)
                        r += 6
                    }
                    while r + 2 <= m {
                        block2x16(count: kb.count, a: a + r * lda + kb.lowerBound, lda: lda, b: panel, ldb: ldb, c: c + r * ldc + j, ldc: ldc)
                        r += 2
                    }
                    if r < m { block1(kb, width: 16, a: a + r * lda, b: b + j, ldb: ldb, c: c + r * ldc + j) }
                }
                j += 16
            }
            if j < cols.upperBound {
                for kb in blocks {
                    for r in 0..<m { block1(kb, width: cols.upperBound - j, a: a + r * lda, b: b + j, ldb: ldb, c: c + r * ldc + j) }
                }
            }
        }
    }

    /// Six rows × 16 columns over `count` values of k (a from the block's first k, b from its
    /// first row): twelve independent FMA chains, their sums added to C; step i also prefetches
    /// row (from + i)·scale / 2²⁰ of `prefetch` (scale 0: its first row). Twelve accumulators, two
    /// vectors of B and the broadcast fit the 16 vector registers with one to spare (a 4 × 24
    /// block needs all 16, and the compiler then spilled an accumulator every step).
    @inline(__always)
    static func block6x16(count: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                          c: UnsafeMutablePointer<Float>, ldc: Int, prefetch: UnsafePointer<Float>,
                          prefetchFrom: Int, prefetchScale: Int) {
        let z = F8(repeating: 0)
        var c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z, c40 = z, c41 = z, c50 = z, c51 = z
        var ap = a, bp = b, left = count, x20 = prefetchFrom &* prefetchScale
        let l2 = 2 &* lda, l3 = 3 &* lda, l4 = 4 &* lda, l5 = 5 &* lda
        while left > 0 {
            sftblas_prefetch(prefetch + (x20 >> 20) &* ldb)
            x20 &+= prefetchScale
            let b0 = Vec.load(bp), b1 = Vec.load(bp + 8)
            var x = F8(repeating: ap[0])
            c00 = c00.addingProduct(x, b0); c01 = c01.addingProduct(x, b1)
            x = F8(repeating: ap[lda])
            c10 = c10.addingProduct(x, b0); c11 = c11.addingProduct(x, b1)
            x = F8(repeating: ap[l2])
            c20 = c20.addingProduct(x, b0); c21 = c21.addingProduct(x, b1)
            x = F8(repeating: ap[l3])
            c30 = c30.addingProduct(x, b0); c31 = c31.addingProduct(x, b1)
            x = F8(repeating: ap[l4])
            c40 = c40.addingProduct(x, b0); c41 = c41.addingProduct(x, b1)
            x = F8(repeating: ap[l5])
            c50 = c50.addingProduct(x, b0); c51 = c51.addingProduct(x, b1)
            bp += ldb; ap += 1; left &-= 1
        }
        add(c00, c); add(c01, c + 8)
        add(c10, c + ldc); add(c11, c + ldc + 8)
        add(c20, c + 2 * ldc); add(c21, c + 2 * ldc + 8)
        add(c30, c + 3 * ldc); add(c31, c + 3 * ldc + 8)
        add(c40, c + 4 * ldc); add(c41, c + 4 * ldc + 8)
        add(c50, c + 5 * ldc); add(c51, c + 5 * ldc + 8)
    }

    /// Two rows × 16 columns, as `block6x16` (rows left over from the groups of six).
    @inline(__always)
    static func block2x16(count: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                          c: UnsafeMutablePointer<Float>, ldc: Int) {
        let z = F8(repeating: 0)
        var c00 = z, c01 = z, c10 = z, c11 = z
        var ap = a, bp = b, left = count
        while left > 0 {
            let b0 = Vec.load(bp), b1 = Vec.load(bp + 8)
            var x = F8(repeating: ap[0])
            c00 = c00.addingProduct(x, b0); c01 = c01.addingProduct(x, b1)
            x = F8(repeating: ap[lda])
            c10 = c10.addingProduct(x, b0); c11 = c11.addingProduct(x, b1)
            bp += ldb; ap += 1; left &-= 1
        }
        add(c00, c); add(c01, c + 8); add(c10, c + ldc); add(c11, c + ldc + 8)
    }

    /// C += v, eight floats.
    @inline(__always) static func add(_ v: F8, _ p: UnsafeMutablePointer<Float>) { Vec.store(Vec.load(p) + v, p) }

    /// One row × `width` columns over one k block, one scalar chain per column.
    static func block1(_ kb: Range<Int>, width: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>, ldb: Int,
                       c: UnsafeMutablePointer<Float>) {
        for col in 0..<width {
            var s: Float = 0
            for kk in kb { s = s.addingProduct(a[kk], b[kk * ldb + col]) }
            c[col] = c[col] + s
        }
    }
}
