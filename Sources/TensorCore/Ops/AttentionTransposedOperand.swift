/// One kv head's keys (or values) as the right operand of C = alpha·A·Bᵀ — the products
/// S = Q·Kᵀ of attention's forward and dP = dout·Vᵀ of its backward, one block of query rows
/// at a time. B's rows sit `ld` floats apart in the q|k|v buffer, so reading it transposed
/// (NT) makes OpenBLAS gather 64-float pieces from rows far apart for every block; instead B
/// is copied once as Bᵀ [dim, count] (contiguous) on the first block that uses it, and every
/// block of every head of the group is a plain product (NN). The sums are the same: each
/// C[i, j] is the dot product over d in order either way.
///
/// Only a copy that serves several heads (grouped-query attention) pays: measured by
/// `SFT_DIST_GEMM_PROFILE` over 4 steps at T = 256, SmolLM2-135M's shape (3 heads per kv head)
/// spent 4.7 % less time in the attention products and copies together, gpt2-mini's (one
/// head per copy) 1–2 % more — the copy's reads of K cost what the NT calls' packing of them
/// did. So with one head per kv head B is read in place, as before.
struct AttentionTransposedOperand {
    let base: UnsafePointer<Float>, ld: Int, count: Int, dim: Int, heads: Int
    /// Room for dim × count floats.
    let copy: UnsafeMutablePointer<Float>
    private var made = false

    /// `heads`: how many heads' products read this operand.
    init(_ base: UnsafePointer<Float>, ld: Int, count: Int, dim: Int, heads: Int, copy: UnsafeMutablePointer<Float>) {
        self.base = base; self.ld = ld; self.count = count; self.dim = dim; self.heads = heads; self.copy = copy
    }

    /// Whether an m × n product reads the transposed copy: when the copy serves more than one
    /// head and the product has more than 1,200 outputs. Smaller products keep the NT call:
    /// OpenBLAS 0.3.21 runs those (head dims ≥ 32) through its SkylakeX small-matrix TN kernel,
    /// whose sums take another order (see `DecodeScores`), so the NN call would change short
    /// sequences' losses — and a copy saves nothing on so small a product.
    static func readsCopy(m: Int, n: Int, heads: Int) -> Bool { heads > 1 && m * n > 1200 }

    /// C[m, n] = alpha·A·Bᵀ over B's first n rows (beta 0).
    mutating func product(m: Int, n: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                          c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard Self.readsCopy(m: m, n: n, heads: heads) else {
            BLAS.gemm(transA: false, transB: true, m: m, n: n, k: dim, alpha: alpha, a: a, lda: lda,
                      b: base, ldb: ld, beta: 0, c: c, ldc: ldc)
            return
        }
        if !made { BLAS.transpose(rows: count, cols: dim, a: base, lda: ld, b: copy, ldb: count); made = true }
        BLAS.gemm(transA: false, transB: false, m: m, n: n, k: dim, alpha: alpha, a: a, lda: lda,
                  b: copy, ldb: count, beta: 0, c: c, ldc: ldc)
    }
}
