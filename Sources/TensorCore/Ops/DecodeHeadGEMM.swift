import COpenBLAS

/// C[m×n] = A[m×k]·Bᵀ with B stored [n×k] row-major: the tied LM head of a decode step
/// (logits = hidden · wteᵀ, wte [V, C]), a few rows against the whole vocabulary.
///
/// Why not `cblas_sgemm`: as for the layers (`DecodeGEMM`), OpenBLAS packs the whole 12.6 MB
/// table (gpt2-mini) on every decode step before its kernel touches it. Here each output is
/// the same chain of fused multiply-adds over k as in OpenBLAS's regular kernel, restarted at
/// every k block of its driver (`DecodeGEMM.kBlocks`), the block sums added in order to a C
/// that starts at 0 — so the logits, and every token sampled from them, are bit-identical
/// (DecodeHeadGEMMTests against `cblas_sgemm`). Use it where `DecodeGEMM.sameSumsAsBLAS` holds.
///
/// B's rows are contiguous in k, so the vectors run over the rows of A instead: A is
/// transposed once per call into `scratch` ([k, m rounded up to 8], zero-padded), and a block
/// of 32 rows × 3 columns keeps twelve independent chains, each step loading four 8-row
/// vectors of Aᵀ (from L1) and broadcasting three elements of B (three sequential streams).
public enum DecodeHeadGEMM {
    /// Floats of scratch `forward` needs for m rows and inner dimension k.
    public static func scratchFloats(m: Int, k: Int) -> Int { (m + 7) / 8 * 8 * k }

    public static func forward(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                               b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int,
                               scratch at: UnsafeMutablePointer<Float>) {
        guard m > 0, n > 0 else { return }
        let mp = (m + 7) / 8 * 8, vectors = mp / 8
        for kk in 0..<k {
            let row = at + kk * mp
            for r in 0..<m { row[r] = a[r * lda + kk] }
            for r in m..<mp { row[r] = 0 }
        }
        let blocks = DecodeGEMM.kBlocks(k)
        Parallel.forRanges(n, minChunk: 48, align: 3) { cols in
            var v0 = 0
            while v0 < vectors {
                let group = min(4, vectors - v0)
                var j = cols.lowerBound
                if group == 4 {
                    while j + 3 <= cols.upperBound {
                        // The next three rows of B are prefetched while these are read: each
                        // row is only 24 cache lines, too short for the hardware to pick up.
                        block32x3(blocks, at: at + v0 * 8, mp: mp, b: b + j * ldb, ldb: ldb, c: c, ldc: ldc, row0: v0 * 8, rows: m, col: j,
                                  prefetch: j + 6 <= cols.upperBound)
                        j += 3
                    }
                }
                while j < cols.upperBound {
                    for v in v0..<(v0 + group) {
                        block8x1(blocks, at: at + v * 8, mp: mp, b: b + j * ldb, c: c, ldc: ldc, row0: v * 8, rows: m, col: j)
                    }
                    j += 1
                }
                v0 += group
            }
        }
    }

    /// Rows row0 ..< row0 + 32 (those below `rows`) × columns col ..< col + 3; with `prefetch`,
    /// one cache line of each of the next three rows of B every 16 steps.
    @inline(__always)
    static func block32x3(_ blocks: [Range<Int>], at: UnsafePointer<Float>, mp: Int, b: UnsafePointer<Float>, ldb: Int,
                          c: UnsafeMutablePointer<Float>, ldc: Int, row0: Int, rows: Int, col: Int, prefetch: Bool) {
        let z = F8(repeating: 0)
        var t00 = z, t01 = z, t02 = z, t10 = z, t11 = z, t12 = z, t20 = z, t21 = z, t22 = z, t30 = z, t31 = z, t32 = z
        let b1 = b + ldb, b2 = b + 2 &* ldb, n0 = b + 3 &* ldb, n1 = b + 4 &* ldb, n2 = b + 5 &* ldb
        var p = at
        for kb in blocks {
            var c00 = z, c01 = z, c02 = z, c10 = z, c11 = z, c12 = z, c20 = z, c21 = z, c22 = z, c30 = z, c31 = z, c32 = z
            var kk = kb.lowerBound
            while kk < kb.upperBound {
                if prefetch && kk & 15 == 0 { sftblas_prefetch(n0 + kk); sftblas_prefetch(n1 + kk); sftblas_prefetch(n2 + kk) }
                let x0 = Vec.load(p), x1 = Vec.load(p + 8), x2 = Vec.load(p + 16), x3 = Vec.load(p + 24)
                let w0 = F8(repeating: b[kk]), w1 = F8(repeating: b1[kk]), w2 = F8(repeating: b2[kk])
                c00 = c00.addingProduct(x0, w0); c01 = c01.addingProduct(x0, w1); c02 = c02.addingProduct(x0, w2)
                c10 = c10.addingProduct(x1, w0); c11 = c11.addingProduct(x1, w1); c12 = c12.addingProduct(x1, w2)
                c20 = c20.addingProduct(x2, w0); c21 = c21.addingProduct(x2, w1); c22 = c22.addingProduct(x2, w2)
                c30 = c30.addingProduct(x3, w0); c31 = c31.addingProduct(x3, w1); c32 = c32.addingProduct(x3, w2)
                p += mp; kk &+= 1
            }
            // C starts at 0 and takes each block's sum in order, as OpenBLAS's driver adds them.
            t00 += c00; t01 += c01; t02 += c02; t10 += c10; t11 += c11; t12 += c12
            t20 += c20; t21 += c21; t22 += c22; t30 += c30; t31 += c31; t32 += c32
        }
        store(t00, c, ldc, row0, rows, col); store(t01, c, ldc, row0, rows, col + 1); store(t02, c, ldc, row0, rows, col + 2)
        store(t10, c, ldc, row0 + 8, rows, col); store(t11, c, ldc, row0 + 8, rows, col + 1); store(t12, c, ldc, row0 + 8, rows, col + 2)
        store(t20, c, ldc, row0 + 16, rows, col); store(t21, c, ldc, row0 + 16, rows, col + 1); store(t22, c, ldc, row0 + 16, rows, col + 2)
        store(t30, c, ldc, row0 + 24, rows, col); store(t31, c, ldc, row0 + 24, rows, col + 1); store(t32, c, ldc, row0 + 24, rows, col + 2)
    }

    /// Rows row0 ..< row0 + 8 (those below `rows`) × column col.
    static func block8x1(_ blocks: [Range<Int>], at: UnsafePointer<Float>, mp: Int, b: UnsafePointer<Float>,
                         c: UnsafeMutablePointer<Float>, ldc: Int, row0: Int, rows: Int, col: Int) {
        var t = F8(repeating: 0)
        for kb in blocks {
            var s = F8(repeating: 0)
            for kk in kb { s = s.addingProduct(Vec.load(at + kk * mp), F8(repeating: b[kk])) }
            t += s
        }
        store(t, c, ldc, row0, rows, col)
    }

    /// Column `col` of rows row0 ..< min(row0 + 8, rows).
    @inline(__always)
    static func store(_ v: F8, _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ row0: Int, _ rows: Int, _ col: Int) {
        for l in 0..<max(0, min(8, rows - row0)) { c[(row0 + l) * ldc + col] = v[l] }
    }
}
