import COpenBLAS

/// The one place sft-dist calls OpenBLAS. Row-major throughout; every matrix product of a
/// layer is one call over the whole (B·T)×C matrix, never a loop of GEMVs.
public enum BLAS {
    /// C = alpha · op(A) · op(B) + beta · C, row-major; op(A) is M×K, op(B) is K×N.
    @inlinable
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                            alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int,
                            beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m == 0 || n == 0 { return }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb),
                    beta, c, Int32(ldc))
    }

    public static var threads: Int {
        get { Int(sftblas_get_num_threads()) }
        set { sftblas_set_num_threads(Int32(newValue)) }
    }

    public static var config: String { String(cString: sftblas_get_config()) }
    public static var coreName: String { String(cString: sftblas_get_corename()) }
}
