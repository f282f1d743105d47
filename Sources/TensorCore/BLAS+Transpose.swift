import COpenBLAS

extension BLAS {
    /// b[c·ldb + r] = a[r·lda + c] for r < rows, c < cols: a strided [rows, cols] block copied
    /// transposed into [cols, rows] (OpenBLAS's `cblas_somatcopy`, alpha 1: an exact copy).
    /// Attention uses it so the products that would read an operand transposed from rows far
    /// apart (QKᵀ, dO·Vᵀ) read it in place instead (`AttentionKernels`).
    public static func transpose(rows: Int, cols: Int, a: UnsafePointer<Float>, lda: Int,
                                 b: UnsafeMutablePointer<Float>, ldb: Int) {
        if rows == 0 || cols == 0 { return }
        let t0 = GEMMProfile.enabled ? GEMMProfile.now() : 0
        cblas_somatcopy(CblasRowMajor, CblasTrans, Int32(rows), Int32(cols), 1, a, Int32(lda), b, Int32(ldb))
        if GEMMProfile.enabled {  // in the GEMM table as (rows, cols, 0, T, T), printed as "copy"
            GEMMProfile.record(.init(m: rows, n: cols, k: 0, transA: true, transB: true), seconds: GEMMProfile.now() - t0)
        }
    }
}
