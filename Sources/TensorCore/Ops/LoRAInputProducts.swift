/// The two products of a LoRA adapter (arXiv 2106.09685, §4.1) that read its [N, IC] input x
/// to produce only r columns (or rows):
///
///     u[N, w]   = x · Aᵀ          (A: [w, IC], w = r, or g·r for a group's stacked A's)
///     dA[w, IC] = duᵀ · x  (+ dA)
///
/// As one `cblas_sgemm` each, OpenBLAS's level-3 path packs all of x first (a copy as long
/// as the arithmetic, ≈ 20–25 GFLOP/s on the SmolLM2-135M shape). OpenBLAS 0.3.21 on
/// SkylakeX/Cooperlake/SapphireRapids has a small-matrix kernel that reads the operands where
/// they are, taken for a call of at most 100³ multiply-adds (for x·Aᵀ also at most 1200 outputs
/// and K ≥ 32: its TN-kernel rule, in column-major terms); so x is cut into pieces that each
/// qualify — blocks of rows, each piece still one `cblas_sgemm` (`BLAS.gemm`). Measured on
/// this build (1 thread, N = 1024, IC = 1536, r = 8): x·Aᵀ 0.61 → 0.30 ms with x in cache,
/// duᵀ·x was cut the same way (1.13 → 0.95 ms with x in memory) until `LoRAInputGradient`
/// beat the pieces on every shape measured (below); it takes widths that are multiples of 4,
/// the rest (r = 1, 2, 3, 5, …) stays one call. On other builds x·Aᵀ stays one call.
/// The pieces' sums differ from the one call's in the last bits (another kernel), never in
/// what they compute.
public enum LoRAInputProducts {
    /// The OpenBLAS build whose small-matrix rule the pieces follow (measured on 0.3.21).
    public static let smallKernelBuild: Bool = {
        BLAS.config.hasPrefix("OpenBLAS 0.3.21 ") && ["SkylakeX", "Cooperlake", "SapphireRapids"].contains(BLAS.coreName)
    }()
    /// Most multiply-adds per call the small kernel takes.
    static let smallKernelWork = 1_000_000

    /// Rows of x per x·Aᵀ call (nil: one call): w·rows ≤ 1200 outputs and rows·w·IC ≤ 100³.
    static func rowsPerCall(width w: Int, inFeatures ic: Int, split: Bool) -> Int? {
        guard split, ic >= 32 else { return nil }
        let rows = min(1200 / w, smallKernelWork / (w * ic))
        return rows > 0 ? rows : nil
    }

    /// u[N, w] (rows `ldu` apart) = x[N, IC] (rows `ldx` apart) · Aᵀ, A [w, IC] row-major.
    public static func project(x: UnsafePointer<Float>, ldx: Int, a: UnsafePointer<Float>, u: UnsafeMutablePointer<Float>,
                               ldu: Int, n: Int, inFeatures ic: Int, width w: Int, split: Bool = smallKernelBuild) {
        guard let rows = rowsPerCall(width: w, inFeatures: ic, split: split), rows < n else {
            BLAS.gemm(transA: false, transB: true, m: n, n: w, k: ic, a: x, lda: ldx, b: a, ldb: ic, beta: 0, c: u, ldc: ldu)
            return
        }
        pieces((n + rows - 1) / rows) { p in
            let r0 = p * rows, m = min(rows, n - r0)
            BLAS.gemm(transA: false, transB: true, m: m, n: w, k: ic, a: x + r0 * ldx, lda: ldx, b: a, ldb: ic,
                      beta: 0, c: u + r0 * ldu, ldc: ldu)
        }
    }

    /// dA[w, IC] = duᵀ · x + beta · dA, du [N, w] (rows `lddu` apart), x [N, IC] (rows `ldx` apart).
    /// Widths that are multiples of 4 take `LoRAInputGradient` (`kernel`, tests turn it off),
    /// which on this build ran 1.1–1.7× faster than the small-kernel pieces with x in memory, as
    /// it is in backward (1 thread, N = 1024, median of 15, x evicted first: IC = 576, w = 8:
    /// 0.84 → 0.58 ms; w = 16: 0.89 → 0.81; w = 24: 1.08 → 0.90; IC = 1536, w = 8: 2.70 → 1.62 ms);
    /// other widths are one `cblas_sgemm`.
    public static func inputSideGradient(du: UnsafePointer<Float>, lddu: Int, x: UnsafePointer<Float>, ldx: Int,
                                         da: UnsafeMutablePointer<Float>, beta: Float, n: Int, inFeatures ic: Int,
                                         width w: Int, kernel: Bool = true) {
        if kernel && LoRAInputGradient.supports(width: w) && (beta == 0 || beta == 1) {
            LoRAInputGradient.run(du: du, lddu: lddu, x: x, ldx: ldx, da: da, accumulate: beta == 1, n: n, inFeatures: ic, width: w)
            return
        }
        BLAS.gemm(transA: true, transB: false, m: w, n: ic, k: n, a: du, lda: lddu, b: x, ldb: ldx, beta: beta, c: da, ldc: ic)
    }

    /// The pieces over the thread pool, in contiguous runs (each piece writes its own block).
    static func pieces(_ count: Int, _ body: (Int) -> Void) {
        Parallel.forRanges(count) { range in for p in range { body(p) } }
    }
}
