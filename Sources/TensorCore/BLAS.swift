import COpenBLAS

/// The one place sft-dist calls OpenBLAS. Row-major throughout; every matrix product of a
/// layer is one call over the whole (B·T)×C matrix, never a loop of GEMVs.
///
/// Threads: OpenBLAS runs single-threaded; a product big enough to share is cut into one
/// block of rows (or columns) per `Parallel` thread, each its own `cblas_sgemm` (see
/// `Parallel` for why one pool serves both).
public enum BLAS {
    /// C = alpha · op(A) · op(B) + beta · C, row-major; op(A) is M×K, op(B) is K×N.
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                            alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int,
                            beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m == 0 || n == 0 { return }
        if GEMMProfile.enabled {
            let t0 = GEMMProfile.now()
            defer { GEMMProfile.record(.init(m: m, n: n, k: k, transA: transA, transB: transB), seconds: GEMMProfile.now() - t0) }
            split(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        split(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    }

    /// `gemm` (C = A·B, square) without the GEMM profile's timing: the benchmark's ceiling
    /// probe, which must not count among the step's products in `SFT_DIST_GEMM_PROFILE`.
    public static func probeGemm(n: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>) {
        split(false, false, n, n, n, 1, a, n, b, n, 0, c, n)
    }

    /// One product, cut into one piece per thread when it is big enough to share.
    @inline(__always)
    static func split(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                      _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                      _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        let threads = ready
        // Below ~8 MFLOP a split costs more than it saves.
        if threads == 1 || Parallel.active || m * n * k < 1 << 22 {
            call(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        if m >= n {  // blocks of rows of C: rows of op(A)
            Parallel.forRanges(m, minChunk: 64, align: 16) { r in
                let ap = transA ? a + r.lowerBound : a + r.lowerBound * lda
                call(transA, transB, r.count, n, k, alpha, ap, lda, b, ldb, beta, c + r.lowerBound * ldc, ldc)
            }
        } else {     // blocks of columns of C: columns of op(B)
            Parallel.forRanges(n, minChunk: 64, align: 16) { r in
                let bp = transB ? b + r.lowerBound * ldb : b + r.lowerBound
                call(transA, transB, m, r.count, k, alpha, a, lda, bp, ldb, beta, c + r.lowerBound, ldc)
            }
        }
    }

    @inline(__always)
    static func call(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                     _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                     _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        let counted = BLASStallGuard.armed
        if counted { BLASStallGuard.inFlight.add(1, ordering: .relaxed) }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb),
                    beta, c, Int32(ldc))
        if counted {
            BLASStallGuard.inFlight.subtract(1, ordering: .relaxed)
            BLASStallGuard.finished.add(1, ordering: .relaxed)
        }
    }

    /// Threads per rank (the `Parallel` pool). The first use takes OpenBLAS's own setting
    /// (OPENBLAS_NUM_THREADS, else the core count) and then turns OpenBLAS's threading off.
    public static var threads: Int {
        get { ready }
        set { Parallel.threads = max(1, newValue) }
    }

    /// Touching the pool first makes sure OpenBLAS's own threading is off.
    private static var ready: Int { Parallel.threads }

    /// One `cblas_sgemm` as OpenBLAS does it, with its own threading at `threads` (the SGEMM
    /// ceiling of `sft-dist bench`); the model never calls this.
    public static func openBLASGemm(threads n: Int, m: Int, n cols: Int, k: Int, a: UnsafePointer<Float>,
                                    b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>) {
        withOpenBLASThreads(n) {
            call(false, false, m, cols, k, 1, a, k, b, cols, 0, c, cols)
        }
    }

    /// Runs `body` with OpenBLAS's own threading at `n` (the SGEMM ceiling measurement).
    public static func withOpenBLASThreads<T>(_ n: Int, _ body: () -> T) -> T {
        _ = ready
        sftblas_set_num_threads(Int32(n))
        defer { sftblas_set_num_threads(1) }
        return body()
    }

    public static var config: String { String(cString: sftblas_get_config()) }
    public static var coreName: String { String(cString: sftblas_get_corename()) }
}
