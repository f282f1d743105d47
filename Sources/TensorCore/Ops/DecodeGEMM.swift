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
        Parallel.forRanges(n, minChunk: 48, align: 24) { cols in
            for kb in blocks {
                var j = cols.lowerBound
                while j + 24 <= cols.upperBound {
                    var r = 0
                    while r + 4 <= m { block4x24(kb, a: a + r * lda, lda: lda, b: b + j, ldb: ldb, c: c + r * ldc + j, ldc: ldc); r += 4 }
                    while r < m { block1(kb, width: 24, a: a + r * lda, b: b + j, ldb: ldb, c: c + r * ldc + j); r += 1 }
                    j += 24
                }
                if j < cols.upperBound {
                    for r in 0..<m { block1(kb, width: cols.upperBound - j, a: a + r * lda, b: b + j, ldb: ldb, c: c + r * ldc + j) }
                }
            }
        }
    }

    /// Four rows × 24 columns over one k block: twelve independent FMA chains.
    @inline(__always)
    static func block4x24(_ kb: Range<Int>, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                          c: UnsafeMutablePointer<Float>, ldc: Int) {
        var c00 = F8(repeating: 0), c01 = F8(repeating: 0), c02 = F8(repeating: 0)
        var c10 = F8(repeating: 0), c11 = F8(repeating: 0), c12 = F8(repeating: 0)
        var c20 = F8(repeating: 0), c21 = F8(repeating: 0), c22 = F8(repeating: 0)
        var c30 = F8(repeating: 0), c31 = F8(repeating: 0), c32 = F8(repeating: 0)
        for kk in kb {
            let bp = b + kk * ldb
            let b0 = Vec.load(bp), b1 = Vec.load(bp + 8), b2 = Vec.load(bp + 16)
            let x0 = F8(repeating: a[kk]), x1 = F8(repeating: a[lda + kk])
            let x2 = F8(repeating: a[2 * lda + kk]), x3 = F8(repeating: a[3 * lda + kk])
            c00 = c00.addingProduct(x0, b0); c01 = c01.addingProduct(x0, b1); c02 = c02.addingProduct(x0, b2)
            c10 = c10.addingProduct(x1, b0); c11 = c11.addingProduct(x1, b1); c12 = c12.addingProduct(x1, b2)
            c20 = c20.addingProduct(x2, b0); c21 = c21.addingProduct(x2, b1); c22 = c22.addingProduct(x2, b2)
            c30 = c30.addingProduct(x3, b0); c31 = c31.addingProduct(x3, b1); c32 = c32.addingProduct(x3, b2)
        }
        func add(_ v: F8, _ p: UnsafeMutablePointer<Float>) { Vec.store(Vec.load(p) + v, p) }
        add(c00, c); add(c01, c + 8); add(c02, c + 16)
        add(c10, c + ldc); add(c11, c + ldc + 8); add(c12, c + ldc + 16)
        add(c20, c + 2 * ldc); add(c21, c + 2 * ldc + 8); add(c22, c + 2 * ldc + 16)
        add(c30, c + 3 * ldc); add(c31, c + 3 * ldc + 8); add(c32, c + 3 * ldc + 16)
    }

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
