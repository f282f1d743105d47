import Foundation

/// Causal multi-head self-attention on already-projected q, k, v, as batched GEMMs per
/// (batch row, head): S = scale·Q·Kᵀ, P = masked softmax(S), out = P·V.
///
/// q, k, v are strided views (row stride `ld`), so GPT-2's fused c_attn output [N, 3C] is
/// used in place with no split copy. Grouped-query attention: head h reads kv head
/// h / (heads / kvHeads). Packing: with `segments`, position i attends to j ≤ i only within
/// the same segment, so packed documents never see each other.
/// Saved for backward: P [B, H, T, T] (llm.c's `att`).
public struct AttentionGeometry: Sendable {
    public var batch: Int, seqLen: Int, heads: Int, kvHeads: Int, headDim: Int
    public init(batch: Int, seqLen: Int, heads: Int, kvHeads: Int, headDim: Int) {
        self.batch = batch; self.seqLen = seqLen; self.heads = heads
        self.kvHeads = kvHeads; self.headDim = headDim
    }
    var group: Int { heads / kvHeads }
}

/// A strided [N, …] operand: element (row, col) is at base[row·ld + col].
public struct StridedRows {
    public let base: UnsafeMutablePointer<Float>
    public let ld: Int
    public init(_ base: UnsafeMutablePointer<Float>, ld: Int) { self.base = base; self.ld = ld }
}

public enum AttentionKernels {
    public static func forward(out: StridedRows, probs: UnsafeMutablePointer<Float>,
                               q: StridedRows, k: StridedRows, v: StridedRows,
                               segments: [Int32]?, g: AttentionGeometry) {
        let T = g.seqLen, hd = g.headDim
        let scale = 1 / Float(hd).squareRoot()
        for b in 0..<g.batch {
            for h in 0..<g.heads {
                let kh = h / g.group
                let qp = q.base + b * T * q.ld + h * hd
                let kp = k.base + b * T * k.ld + kh * hd
                let vp = v.base + b * T * v.ld + kh * hd
                let p = probs + (b * g.heads + h) * T * T
                BLAS.gemm(transA: false, transB: true, m: T, n: T, k: hd, alpha: scale,
                          a: qp, lda: q.ld, b: kp, ldb: k.ld, beta: 0, c: p, ldc: T)
                maskedSoftmaxRows(p, seqLen: T, segments: segments.map { Array($0[(b * T)..<(b * T + T)]) })
                BLAS.gemm(transA: false, transB: false, m: T, n: hd, k: T,
                          a: p, lda: T, b: vp, ldb: v.ld, beta: 0,
                          c: out.base + b * T * out.ld + h * hd, ldc: out.ld)
            }
        }
    }

    /// Row i keeps columns j ≤ i (same segment if given); the rest become exactly 0.
    static func maskedSoftmaxRows(_ p: UnsafeMutablePointer<Float>, seqLen T: Int, segments: [Int32]?) {
        for i in 0..<T {
            let row = p + i * T
            var maxv = -Float.infinity
            for j in 0...i where segments == nil || segments![j] == segments![i] {
                maxv = max(maxv, row[j])
            }
            var sum: Float = 0
            for j in 0..<T {
                if j <= i && (segments == nil || segments![j] == segments![i]) {
                    let e = expf(row[j] - maxv)
                    row[j] = e
                    sum += e
                } else {
                    row[j] = 0
                }
            }
            let inv = 1 / sum
            for j in 0...i { row[j] *= inv }
        }
    }

    /// Accumulates into dq, dk, dv (any may be nil when that input needs no gradient).
    public static func backward(dq: StridedRows?, dk: StridedRows?, dv: StridedRows?,
                                dout: StridedRows, probs: UnsafePointer<Float>,
                                q: StridedRows, k: StridedRows, v: StridedRows,
                                g: AttentionGeometry) {
        let T = g.seqLen, hd = g.headDim
        let scale = 1 / Float(hd).squareRoot()
        let dS = UnsafeMutablePointer<Float>.allocate(capacity: T * T)
        defer { dS.deallocate() }
        for b in 0..<g.batch {
            for h in 0..<g.heads {
                let kh = h / g.group
                let p = probs + (b * g.heads + h) * T * T
                let dop = dout.base + b * T * dout.ld + h * hd
                let qp = q.base + b * T * q.ld + h * hd
                let kp = k.base + b * T * k.ld + kh * hd
                let vp = v.base + b * T * v.ld + kh * hd
                if let dv {  // dV += Pᵀ·dout
                    BLAS.gemm(transA: true, transB: false, m: T, n: hd, k: T,
                              a: p, lda: T, b: dop, ldb: dout.ld, beta: 1,
                              c: dv.base + b * T * dv.ld + kh * hd, ldc: dv.ld)
                }
                guard dq != nil || dk != nil else { continue }
                // dP = dout·Vᵀ, then the softmax Jacobian: dS = P ⊙ (dP − Σ_j P·dP) · scale.
                BLAS.gemm(transA: false, transB: true, m: T, n: T, k: hd,
                          a: dop, lda: dout.ld, b: vp, ldb: v.ld, beta: 0, c: dS, ldc: T)
                for i in 0..<T {
                    let pr = p + i * T, dr = dS + i * T
                    var dot: Float = 0
                    for j in 0...i { dot += pr[j] * dr[j] }
                    for j in 0..<T { dr[j] = j <= i ? pr[j] * (dr[j] - dot) * scale : 0 }
                }
                if let dq {  // dQ += dS·K
                    BLAS.gemm(transA: false, transB: false, m: T, n: hd, k: T,
                              a: dS, lda: T, b: kp, ldb: k.ld, beta: 1,
                              c: dq.base + b * T * dq.ld + h * hd, ldc: dq.ld)
                }
                if let dk {  // dK += dSᵀ·Q
                    BLAS.gemm(transA: true, transB: false, m: T, n: hd, k: T,
                              a: dS, lda: T, b: qp, ldb: q.ld, beta: 1,
                              c: dk.base + b * T * dk.ld + kh * hd, ldc: dk.ld)
                }
            }
        }
    }
}

extension Tape {
    /// GPT-2 form: `qkv` is [B·T, 3C] with q | k | v along the columns. Returns [B·T, C].
    public func causalSelfAttention(qkv: Tensor, batch: Int, seqLen: Int, heads: Int,
                                    segments: [Int32]? = nil) -> Tensor {
        let c3 = qkv.columns, c = c3 / 3
        precondition(c3 % 3 == 0 && c % heads == 0, "attention: \(c3) columns for \(heads) heads")
        precondition(qkv.rows == batch * seqLen, "attention: \(qkv.rows) rows for B=\(batch) T=\(seqLen)")
        let g = AttentionGeometry(batch: batch, seqLen: seqLen, heads: heads, kvHeads: heads, headDim: c / heads)
        let out = Tensor(zeros: [batch * seqLen, c])
        let probs = Tensor(zeros: [batch, heads, seqLen, seqLen])
        let q = StridedRows(qkv.data, ld: c3), k = StridedRows(qkv.data + c, ld: c3)
        let v = StridedRows(qkv.data + 2 * c, ld: c3)
        AttentionKernels.forward(out: StridedRows(out.data, ld: c), probs: probs.data,
                                 q: q, k: k, v: v, segments: segments, g: g)
        out.requiresGrad = record([qkv]) {
            let d = qkv.grad
            AttentionKernels.backward(dq: StridedRows(d, ld: c3), dk: StridedRows(d + c, ld: c3),
                                      dv: StridedRows(d + 2 * c, ld: c3),
                                      dout: StridedRows(out.grad, ld: c), probs: probs.data,
                                      q: q, k: k, v: v, g: g)
        }
        return out
    }

    /// Separate q [N, H·hd], k and v [N, KVH·hd] (Llama family, grouped-query attention).
    public func causalSelfAttention(q: Tensor, k: Tensor, v: Tensor, batch: Int, seqLen: Int,
                                    heads: Int, kvHeads: Int, segments: [Int32]? = nil) -> Tensor {
        let hd = q.columns / heads
        precondition(heads % kvHeads == 0 && k.columns == kvHeads * hd && v.columns == kvHeads * hd,
                     "attention: q \(q.shape), k \(k.shape), v \(v.shape) for \(heads)/\(kvHeads) heads")
        let g = AttentionGeometry(batch: batch, seqLen: seqLen, heads: heads, kvHeads: kvHeads, headDim: hd)
        let out = Tensor(zeros: [batch * seqLen, heads * hd])
        let probs = Tensor(zeros: [batch, heads, seqLen, seqLen])
        let qs = StridedRows(q.data, ld: q.columns), ks = StridedRows(k.data, ld: k.columns)
        let vs = StridedRows(v.data, ld: v.columns)
        AttentionKernels.forward(out: StridedRows(out.data, ld: out.columns), probs: probs.data,
                                 q: qs, k: ks, v: vs, segments: segments, g: g)
        out.requiresGrad = record([q, k, v]) {
            AttentionKernels.backward(dq: q.requiresGrad ? StridedRows(q.grad, ld: q.columns) : nil,
                                      dk: k.requiresGrad ? StridedRows(k.grad, ld: k.columns) : nil,
                                      dv: v.requiresGrad ? StridedRows(v.grad, ld: v.columns) : nil,
                                      dout: StridedRows(out.grad, ld: out.columns), probs: probs.data,
                                      q: qs, k: ks, v: vs, g: g)
        }
        return out
    }
}
