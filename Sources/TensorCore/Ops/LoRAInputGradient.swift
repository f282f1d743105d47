/// The input-side gradient of LoRA adapters (arXiv 2106.09685, §4.1) as register-blocked
/// multiply-adds, for widths that are multiples of 4 (a rank, or a group's g·r):
///
///     dA[w, IC] = duᵀ[w, N] · x[N, IC]  (+ dA)
///
/// As a GEMM it has an inner dimension of N and an output of only w rows: OpenBLAS packs
/// all of x and then runs far below its square-GEMM rate (10–40 GFLOP/s per call on the
/// SmolLM2-135M shape, `SFT_DIST_GEMM_PROFILE`). Here x is read once, row by row in chunks
/// that stay in cache, and each 4 × 16 block of dA is a set of eight 8-wide accumulators over
/// a chunk's rows: per row of x, two loads, four broadcasts of du and eight fused
/// multiply-adds. Threads take fixed 16-column blocks of dA, and every element sums its
/// rows in row order, so the bits do not depend on the thread count.
public enum LoRAInputGradient {
    /// Whether `width` takes this kernel (else the GEMM).
    public static func supports(width: Int) -> Bool { width > 0 && width % 4 == 0 }

    /// Rows of x per chunk: 64 rows of the widest input (IC = 4,864, Qwen2.5-0.5B's
    /// intermediate size) are 1.2 MiB, in L2 while every 4-row block of dA reads them.
    static let rowsPerChunk = 64

    /// dA[w, IC] (rows `ic` apart) = duᵀ·x, or += with `accumulate`; du [N, w] rows `lddu`
    /// apart, x [N, IC] rows `ldx` apart.
    public static func run(du: UnsafePointer<Float>, lddu: Int, x: UnsafePointer<Float>, ldx: Int,
                           da: UnsafeMutablePointer<Float>, accumulate: Bool, n: Int, inFeatures ic: Int, width w: Int) {
        precondition(supports(width: w), "LoRAInputGradient: width \(w) is not a multiple of 4")
        if n == 0 {
            if !accumulate { da.update(repeating: 0, count: w * ic) }
            return
        }
        Parallel.forRanges(ic, minChunk: 64, align: 16) { cols in
            var r0 = 0
            while r0 < n {
                let rows = r0..<min(r0 + rowsPerChunk, n)
                let add = accumulate || r0 > 0
                touch(x: x, ldx: ldx, rows: rows, columns: cols)
                var c = cols.lowerBound
                while c + 16 <= cols.upperBound {
                    block16(du: du, lddu: lddu, x: x, ldx: ldx, da: da, ic: ic, column: c, rows: rows, width: w, add: add)
                    c += 16
                }
                while c < cols.upperBound {  // the last columns of an IC that is not a multiple of 16
                    for k in 0..<w {
                        var s: Float = 0
                        for i in rows { s += du[i * lddu + k] * x[i * ldx + c] }
                        da[k * ic + c] = add ? da[k * ic + c] + s : s
                    }
                    c += 1
                }
                r0 = rows.upperBound
            }
        }
    }

    /// Reads the chunk's rows in address order, one float per cache line, before the blocks
    /// walk it a column block at a time: rows are IC floats apart (2–19 KB), a stride the
    /// hardware prefetchers do not follow, so every first read of a line would wait for
    /// memory; in address order they stream.
    @inline(__always)
    static func touch(x: UnsafePointer<Float>, ldx: Int, rows: Range<Int>, columns: Range<Int>) {
        var s = F8(repeating: 0)
        for i in rows {
            let row = x + i * ldx
            var c = columns.lowerBound
            while c + 8 <= columns.upperBound { s += Vec.load(row + c); c += 16 }
        }
        sink = s[0]
    }
    nonisolated(unsafe) static var sink: Float = 0

    /// dA[k ..< k+4, c ..< c+16] over `rows`, for every 4 rows k of dA.
    @inline(__always)
    static func block16(du: UnsafePointer<Float>, lddu: Int, x: UnsafePointer<Float>, ldx: Int,
                        da: UnsafeMutablePointer<Float>, ic: Int, column c: Int, rows: Range<Int>, width w: Int, add: Bool) {
        var k = 0
        while k < w {
            var a00 = F8(repeating: 0), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00
            var xp = x + rows.lowerBound * ldx + c
            var dp = du + rows.lowerBound * lddu + k
            for _ in rows {
                let x0 = Vec.load(xp), x1 = Vec.load(xp + 8)
                let g0 = F8(repeating: dp[0]), g1 = F8(repeating: dp[1]), g2 = F8(repeating: dp[2]), g3 = F8(repeating: dp[3])
                a00 = a00.addingProduct(g0, x0); a01 = a01.addingProduct(g0, x1)
                a10 = a10.addingProduct(g1, x0); a11 = a11.addingProduct(g1, x1)
                a20 = a20.addingProduct(g2, x0); a21 = a21.addingProduct(g2, x1)
                a30 = a30.addingProduct(g3, x0); a31 = a31.addingProduct(g3, x1)
                xp += ldx; dp += lddu
            }
            let p0 = da + k * ic + c, p1 = p0 + ic, p2 = p1 + ic, p3 = p2 + ic
            if add {
                a00 += Vec.load(p0); a01 += Vec.load(p0 + 8); a10 += Vec.load(p1); a11 += Vec.load(p1 + 8)
                a20 += Vec.load(p2); a21 += Vec.load(p2 + 8); a30 += Vec.load(p3); a31 += Vec.load(p3 + 8)
            }
            Vec.store(a00, p0); Vec.store(a01, p0 + 8); Vec.store(a10, p1); Vec.store(a11, p1 + 8)
            Vec.store(a20, p2); Vec.store(a21, p2 + 8); Vec.store(a30, p3); Vec.store(a31, p3 + 8)
            k += 4
        }
    }
}
