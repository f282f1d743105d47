import TensorCore

/// The LM head of a decode step: logits [rows, V] = x · headᵀ with the head stored [V, C]
/// (GPT-2's tied wte, Llama's lm_head or tied embeddings). For the few rows of a decode step
/// `DecodeHeadGEMM` (no packing of the table, OpenBLAS's sums); for a prefill's many rows, or
/// where OpenBLAS would sum differently, `cblas_sgemm`. Either way the logits are the same bits.
enum DecodeHead {
    static let maxRows = 64
    /// Tests set this to run every head on OpenBLAS, the path this one must match bit for bit.
    static var forceBLAS = false

    /// Floats of scratch `logits` needs (none when the rows go to OpenBLAS).
    static func scratchFloats(rows: Int, dim: Int) -> Int {
        rows <= maxRows ? DecodeHeadGEMM.scratchFloats(m: rows, k: dim) : 0
    }

    static func logits(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, head: UnsafePointer<Float>,
                       rows: Int, dim: Int, vocab: Int, scratch: UnsafeMutablePointer<Float>) {
        guard !forceBLAS, rows <= maxRows, DecodeGEMM.sameSumsAsBLAS(m: rows, n: vocab, k: dim) else {
            LinearKernels.forward(out: out, x: x, w: head, bias: nil, n: rows, inFeatures: dim, outFeatures: vocab, layout: .outIn)
            return
        }
        DecodeHeadGEMM.forward(m: rows, n: vocab, k: dim, a: x, lda: dim, b: head, ldb: dim, c: out, ldc: vocab, scratch: scratch)
    }
}
