/// RMSNorm over the last dimension: y = x · rstd · w, rstd = 1/√(mean(x²) + eps).
///
/// The Llama family's norm (Zhang & Sennrich 2019), as Hugging Face's `LlamaRMSNorm` computes
/// it: in float32, no mean subtraction and no bias, the weight applied after normalising.
/// Forward saves rstd per row so backward needs one reduction per row, not two.
///
/// Rows are split over the `Parallel` threads; backward's dweight is split by columns, each
/// summing its rows in order, so every result has the bits of the one-thread loop.
public enum RMSNormKernels {
    public static func forward(out: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
                               x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                               rows: Int, dim c: Int, eps: Float) {
        Parallel.forRows(rows, width: c) { range in
            // Σ x² of each row in order, four rows at a time (RowChains: the plain loop's bits).
            RowChains.sums(rows: range, columns: c, term: { r, j in x[r * c + j] * x[r * c + j] }) { r, ss in
                let xr = x + r * c, o = out + r * c
                let s = 1 / (ss / Float(c) + eps).squareRoot()
                for j in 0..<c { o[j] = xr[j] * s * weight[j] }
                rstd[r] = s
            }
        }
    }

    /// With n = x·rstd: dw += Σ_rows dout·n;
    /// dx = rstd·(w⊙dout) − n · mean(w⊙dout⊙n) · rstd  (the derivative of rstd through mean(x²)).
    public static func backward(dx: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?,
                                dout: UnsafePointer<Float>, x: UnsafePointer<Float>,
                                weight: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                rows: Int, dim c: Int) {
        if let dx {  // row-local: rows split over the threads
            Parallel.forRows(rows, width: c) { range in
                // Σ_j w_j·d_j·n_j of each row in order, four rows at a time (RowChains).
                RowChains.sums(rows: range, columns: c,
                               term: { r, j in weight[j] * dout[r * c + j] * x[r * c + j] * rstd[r] }) { r, dot in
                    let xr = x + r * c, d = dout + r * c, o = dx + r * c
                    let s = rstd[r]
                    let m = dot / Float(c)
                    // 8 at a time, the same products in the same order as the scalar tail (the
                    // compiler left this loop scalar: it cannot rule out dx aliasing the inputs).
                    let sv = F8(repeating: s), mv = F8(repeating: m)
                    var j = 0
                    while j + 8 <= c {
                        Vec.store(Vec.load(o + j) + (Vec.load(weight + j) * Vec.load(d + j) - Vec.load(xr + j) * sv * mv) * sv, o + j)
                        j += 8
                    }
                    while j < c { o[j] += (weight[j] * d[j] - xr[j] * s * m) * s; j += 1 }
                }
            }
        }
        if let dweight {  // column sums over the rows in order: columns split over the threads
            Parallel.forColumns(c, rows: rows) { cols in
                for r in 0..<rows {
                    let xr = x + r * c, d = dout + r * c
                    let s = rstd[r]
                    for j in cols { dweight[j] += d[j] * (xr[j] * s) }
                }
            }
        }
    }
}

extension Tape {
    public func rmsNorm(_ x: Tensor, weight: Tensor, eps: Float) -> Tensor {
        let c = x.columns, rows = x.rows
        precondition(weight.count == c, "rmsNorm: weight size \(weight.count) != \(c)")
        let out = output(x.shape)
        let rstd = output([rows])
        RMSNormKernels.forward(out: out.data, rstd: rstd.data, x: x.data, weight: weight.data,
                               rows: rows, dim: c, eps: eps)
        out.requiresGrad = record([x, weight], output: out) {
            RMSNormKernels.backward(dx: x.requiresGrad ? x.grad : nil,
                                    dweight: weight.requiresGrad ? weight.grad : nil,
                                    dout: out.grad, x: x.data, weight: weight.data, rstd: rstd.data,
                                    rows: rows, dim: c)
        }
        return out
    }
}
