import Foundation

/// Causal multi-head self-attention on already-projected q, k, v, as batched GEMMs per
/// (batch row, head): S = scale·Q·Kᵀ, P = masked softmax(S), out = P·V.
///
/// q, k, v are strided views (row stride `ld`), so GPT-2's fused c_attn output [N, 3C] is
/// used in place with no split copy. Grouped-query attention: head h reads kv head
/// h / (heads / kvHeads). Packing: with `segments`, position i attends to j ≤ i only within
/// the same segment, so packed documents never see each other.
/// Saved for backward: P [B, H, T, T] (llm.c's `att`), defined up to the end of each row's
/// block of 64 queries.
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
    /// Rows of S are computed in blocks of this many queries, each only against the keys
    /// up to the block's last query: the masked upper triangle is (mostly) never computed.
    static let block = 64

    public static func forward(out: StridedRows, probs: UnsafeMutablePointer<Float>,
                               q: StridedRows, k: StridedRows, v: StridedRows,
                               segments: [Int32]?, g: AttentionGeometry) {
        let T = g.seqLen, hd = g.headDim
        let scale = 1 / Float(hd).squareRoot()
        let threads = Parallel.threads
        let scratch = Scratch.shared.floats(slot: 2, count: threads * hd * T)
        // One (batch row, kv head) per work item: its keys are transposed once for every head
        // of the group (`AttentionTransposedOperand`). With fewer such pairs than threads (one
        // row, few kv heads), one (batch row, head) per item instead, reading K in place.
        let perHead = g.batch * g.kvHeads < threads && g.group > 1
        let items = perHead ? g.batch * g.heads : g.batch * g.kvHeads
        withSegments(segments) { seg in
            Parallel.onEachThread { t in
                let kT = scratch + t * hd * T
                var item = t
                while item < items {
                    defer { item += threads }
                    let b = perHead ? item / g.heads : item / g.kvHeads
                    let first = perHead ? item % g.heads : item % g.kvHeads * g.group
                    let heads = first..<(first + (perHead ? 1 : g.group))
                    let kh = heads.lowerBound / g.group
                    let vp = v.base + b * T * v.ld + kh * hd
                    var keys = AttentionTransposedOperand(k.base + b * T * k.ld + kh * hd, ld: k.ld, count: T,
                                                          dim: hd, heads: heads.count, copy: kT)
                    for h in heads {
                        let qp = q.base + b * T * q.ld + h * hd
                        let p = probs + (b * g.heads + h) * T * T
                        var i0 = 0
                        while i0 < T {
                            let i1 = min(T, i0 + block)
                            keys.product(m: i1 - i0, n: i1, alpha: scale, a: qp + i0 * q.ld, lda: q.ld, c: p + i0 * T, ldc: T)
                            maskedSoftmaxRows(p, rows: i0..<i1, seqLen: T, segments: seg.map { $0 + b * T })
                            BLAS.gemm(transA: false, transB: false, m: i1 - i0, n: hd, k: i1,
                                      a: p + i0 * T, lda: T, b: vp, ldb: v.ld, beta: 0,
                                      c: out.base + (b * T + i0) * out.ld + h * hd, ldc: out.ld)
                            i0 = i1
                        }
                    }
                }
            }
        }
    }

    static func withSegments<R>(_ segments: [Int32]?, _ body: (UnsafePointer<Int32>?) -> R) -> R {
        guard let segments else { return body(nil) }
        return segments.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    /// Row i keeps columns j ≤ i (same segment if given); the rest, up to the end of the
    /// block of rows, becomes 0 (nothing reads P past a row's block: the GEMMs stop there).
    static func maskedSoftmaxRows(_ p: UnsafeMutablePointer<Float>, rows: Range<Int>, seqLen T: Int,
                                  segments: UnsafePointer<Int32>?) {
        for i in rows {
            let row = p + i * T
            if let seg = segments {
                var maxv = -Float.infinity
                for j in 0...i where seg[j] == seg[i] { maxv = max(maxv, row[j]) }
                var sum: Float = 0
                for j in 0...i {
                    if seg[j] == seg[i] { let e = expf(row[j] - maxv); row[j] = e; sum += e } else { row[j] = 0 }
                }
                Vec.scale(row, 1 / sum, count: i + 1)
            } else {
                let n = i + 1
                let maxv = Vec.maximum(row, count: n)
                let sum = Vec.expShifted(row, shift: maxv, count: n)
                Vec.scale(row, 1 / sum, count: n)
            }
            (row + i + 1).update(repeating: 0, count: rows.upperBound - i - 1)
        }
    }

    /// out[j] += Σ_{i ≥ j} M[i, j]·X[i] for every key j of one head: Mᵀ·X over M's causal
    /// lower triangle ([T, T], row stride T), one GEMM per block of keys, skipping rows i < j.
    static func addCausalTransposed(_ m: UnsafePointer<Float>, seqLen T: Int, headDim hd: Int,
                                    times x: StridedRows, into out: StridedRows) {
        var j0 = 0
        while j0 < T {
            let j1 = min(T, j0 + block)
            BLAS.gemm(transA: true, transB: false, m: j1 - j0, n: hd, k: T - j0,
                      a: m + j0 * T + j0, lda: T, b: x.base + j0 * x.ld, ldb: x.ld, beta: 1,
                      c: out.base + j0 * out.ld, ldc: out.ld)
            j0 = j1
        }
    }

    /// Accumulates into dq, dk, dv (any may be nil when that input needs no gradient).
    public static func backward(dq: StridedRows?, dk: StridedRows?, dv: StridedRows?,
                                dout: StridedRows, probs: UnsafePointer<Float>,
                                q: StridedRows, k: StridedRows, v: StridedRows,
                                g: AttentionGeometry) {
        let T = g.seqLen, hd = g.headDim
        let scale = 1 / Float(hd).squareRoot()
        let threads = Parallel.threads
        let perThread = T * T + hd * T
        let scratch = Scratch.shared.floats(slot: 2, count: threads * perThread)
        // One (batch row, kv head) per work item: the heads sharing a kv head write the same
        // dk/dv rows, so they stay on one thread; its values are transposed once for dP = dout·Vᵀ
        // (`AttentionTransposedOperand`), as the keys are for S = Q·Kᵀ in `forward`.
        let items = g.batch * g.kvHeads
        Parallel.onEachThread { t in
            let dS = scratch + t * perThread, vT = dS + T * T
            var item = t
            while item < items {
                defer { item += threads }
                let b = item / g.kvHeads, kh = item % g.kvHeads
                let kp = k.base + b * T * k.ld + kh * hd
                let vp = v.base + b * T * v.ld + kh * hd
                var values = AttentionTransposedOperand(vp, ld: v.ld, count: T, dim: hd, heads: g.group, copy: vT)
                for h in (kh * g.group)..<((kh + 1) * g.group) {
                    let p = probs + (b * g.heads + h) * T * T
                    let dop = dout.base + b * T * dout.ld + h * hd
                    let qp = q.base + b * T * q.ld + h * hd
                    if let dv {  // dV[j] += Σ_{i ≥ j} P[i, j]·dout[i]
                        addCausalTransposed(p, seqLen: T, headDim: hd, times: StridedRows(dop, ld: dout.ld),
                                            into: StridedRows(dv.base + b * T * dv.ld + kh * hd, ld: dv.ld))
                    }
                    guard dq != nil || dk != nil else { continue }
                    // dP = dout·Vᵀ (causal blocks), then the softmax Jacobian:
                    // dS = P ⊙ (dP − Σ_j P·dP) · scale, zero above the diagonal.
                    var i0 = 0
                    while i0 < T {
                        let i1 = min(T, i0 + block)
                        values.product(m: i1 - i0, n: i1, a: dop + i0 * dout.ld, lda: dout.ld, c: dS + i0 * T, ldc: T)
                        for i in i0..<i1 {
                            let pr = p + i * T, dr = dS + i * T
                            let n = i + 1
                            let dot = F8(repeating: Vec.dot(pr, dr, count: n))
                            let sv = F8(repeating: scale)
                            var j = 0
                            while j + 8 <= n { Vec.store(Vec.load(pr + j) * (Vec.load(dr + j) - dot) * sv, dr + j); j += 8 }
                            while j < n { dr[j] = pr[j] * (dr[j] - dot[0]) * scale; j += 1 }
                            if i1 > n { (dr + n).update(repeating: 0, count: i1 - n) }
                        }
                        if let dq {  // dQ[i] += Σ_{j ≤ i} dS[i, j]·K[j]
                            BLAS.gemm(transA: false, transB: false, m: i1 - i0, n: hd, k: i1,
                                      a: dS + i0 * T, lda: T, b: kp, ldb: k.ld, beta: 1,
                                      c: dq.base + (b * T + i0) * dq.ld + h * hd, ldc: dq.ld)
                        }
                        i0 = i1
                    }
                    if let dk {  // dK[j] += Σ_{i ≥ j} dS[i, j]·Q[i]
                        addCausalTransposed(dS, seqLen: T, headDim: hd, times: StridedRows(qp, ld: q.ld),
                                            into: StridedRows(dk.base + b * T * dk.ld + kh * hd, ld: dk.ld))
                    }
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
        let out = output([batch * seqLen, c])
        let probs = output([batch, heads, seqLen, seqLen])
        let q = StridedRows(qkv.data, ld: c3), k = StridedRows(qkv.data + c, ld: c3)
        let v = StridedRows(qkv.data + 2 * c, ld: c3)
        AttentionKernels.forward(out: StridedRows(out.data, ld: c), probs: probs.data,
                                 q: q, k: k, v: v, segments: segments, g: g)
        out.requiresGrad = record([qkv], output: out) {
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
        let out = output([batch * seqLen, heads * hd])
        let probs = output([batch, heads, seqLen, seqLen])
        let qs = StridedRows(q.data, ld: q.columns), ks = StridedRows(k.data, ld: k.columns)
        let vs = StridedRows(v.data, ld: v.columns)
        AttentionKernels.forward(out: StridedRows(out.data, ld: out.columns), probs: probs.data,
                                 q: qs, k: ks, v: vs, segments: segments, g: g)
        out.requiresGrad = record([q, k, v], output: out) {
            AttentionKernels.backward(dq: q.requiresGrad ? StridedRows(q.grad, ld: q.columns) : nil,
                                      dk: k.requiresGrad ? StridedRows(k.grad, ld: k.columns) : nil,
                                      dv: v.requiresGrad ? StridedRows(v.grad, ld: v.columns) : nil,
                                      dout: StridedRows(out.grad, ld: out.columns), probs: probs.data,
                                      q: qs, k: ks, v: vs, g: g)
        }
        return out
    }
}
