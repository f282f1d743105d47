extension Tape {
    /// Grouped-query attention on a packed q|k|v projection `qkv` [B·T, (H + 2·KVH)·hd] (the
    /// Llama family's fused q/k/v GEMM): q, k and v are strided column blocks of it, as GPT-2's
    /// `causalSelfAttention(qkv:)` reads its [B·T, 3C]. Returns [B·T, H·hd].
    public func causalSelfAttention(qkv: Tensor, batch: Int, seqLen: Int, heads: Int, kvHeads: Int,
                                    headDim hd: Int, segments: [Int32]? = nil) -> Tensor {
        let qw = heads * hd, kw = kvHeads * hd, ld = qkv.columns
        precondition(heads % kvHeads == 0 && ld == qw + 2 * kw,
                     "attention: \(ld) columns for \(heads)/\(kvHeads) heads of \(hd)")
        precondition(qkv.rows == batch * seqLen, "attention: \(qkv.rows) rows for B=\(batch) T=\(seqLen)")
        let g = AttentionGeometry(batch: batch, seqLen: seqLen, heads: heads, kvHeads: kvHeads, headDim: hd)
        let out = output([batch * seqLen, qw])
        let probs = output([batch, heads, seqLen, seqLen])
        let q = StridedRows(qkv.data, ld: ld), k = StridedRows(qkv.data + qw, ld: ld)
        let v = StridedRows(qkv.data + qw + kw, ld: ld)
        AttentionKernels.forward(out: StridedRows(out.data, ld: qw), probs: probs.data,
                                 q: q, k: k, v: v, segments: segments, g: g)
        out.requiresGrad = record([qkv], output: out) {
            let d = qkv.grad
            AttentionKernels.backward(dq: StridedRows(d, ld: ld), dk: StridedRows(d + qw, ld: ld),
                                      dv: StridedRows(d + qw + kw, ld: ld),
                                      dout: StridedRows(out.grad, ld: qw), probs: probs.data,
                                      q: q, k: k, v: v, g: g)
        }
        return out
    }
}
