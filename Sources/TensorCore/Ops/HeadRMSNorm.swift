/// Qwen3's QK-Norm (Qwen3 Technical Report, arXiv 2505.09388, §2: QK-Norm "to ensure stable training",
/// after Dehghani et al. 2023): RMSNorm over each attention head's `headDim` features of q and of k, after the
/// projection and before rotary, one weight [headDim] shared by all heads — transformers'
/// `Qwen3Attention`: `q_norm(q_proj(h).view(…, head_dim))`, `k_norm(…)`.
///
/// It runs in place on a column block of a packed [N, ld] tensor (the q heads or the k heads of
/// q|k|v), so the packed projection and attention stay as they are. Forward keeps the block's
/// input, [N·heads, headDim], and rstd per head row; backward turns the block's gradient in
/// place from d/d(normed) into d/d(input), as `rotaryInPlace` does for the rotation.
///
///     n = x·rstd, rstd = 1/√(mean(x²) + eps);  y = n ⊙ w
///     dw += Σ_rows dy ⊙ n;  dx = rstd·(w⊙dy − n · mean(w⊙dy⊙n))      (as `RMSNormKernels`)
public enum HeadRMSNormKernels {
    /// Head row r = token r / heads, head r % heads, at x + token·ld + column + head·headDim.
    @inline(__always)
    static func row(_ base: UnsafeMutablePointer<Float>, _ r: Int, ld: Int, column: Int, heads: Int, headDim: Int)
        -> UnsafeMutablePointer<Float> {
        base + (r / heads) * ld + column + (r % heads) * headDim
    }

    /// Normalises the block in place; `saved` (when given) receives its input, rstd one value per
    /// head row. The decoder calls it with `saved` nil.
    public static func forward(x: UnsafeMutablePointer<Float>, ld: Int, column: Int, tokens n: Int, heads: Int,
                               headDim hd: Int, weight: UnsafePointer<Float>, eps: Float,
                               saved: UnsafeMutablePointer<Float>?, rstd: UnsafeMutablePointer<Float>) {
        Parallel.forRows(n * heads, width: hd) { range in
            for r in range {
                let v = row(x, r, ld: ld, column: column, heads: heads, headDim: hd)
                var ss: Float = 0
                for j in 0..<hd { ss += v[j] * v[j] }
                let s = 1 / (ss / Float(hd) + eps).squareRoot()
                if let saved { (saved + r * hd).update(from: v, count: hd) }
                for j in 0..<hd { v[j] = v[j] * s * weight[j] }
                rstd[r] = s
            }
        }
    }

    /// `grad`'s block holds dL/dy on entry; dweight is summed from it first, then (with
    /// `inputGradient`) the block is overwritten with dL/dx.
    public static func backward(grad g: UnsafeMutablePointer<Float>, ld: Int, column: Int, tokens n: Int, heads: Int,
                                headDim hd: Int, weight: UnsafePointer<Float>, saved: UnsafePointer<Float>,
                                rstd: UnsafePointer<Float>, dweight: UnsafeMutablePointer<Float>?, inputGradient: Bool) {
        let rows = n * heads
        if let dweight {  // columns split over the threads, each summing the rows in order
            Parallel.forColumns(hd, rows: rows) { cols in
                for r in 0..<rows {
                    let d = row(g, r, ld: ld, column: column, heads: heads, headDim: hd), xr = saved + r * hd, s = rstd[r]
                    for j in cols { dweight[j] += d[j] * (xr[j] * s) }
                }
            }
        }
        guard inputGradient else { return }
        Parallel.forRows(rows, width: hd) { range in
            for r in range {
                let d = row(g, r, ld: ld, column: column, heads: heads, headDim: hd), xr = saved + r * hd, s = rstd[r]
                var dot: Float = 0
                for j in 0..<hd { dot += weight[j] * d[j] * xr[j] * s }
                let m = dot / Float(hd)
                for j in 0..<hd { d[j] = (weight[j] * d[j] - xr[j] * s * m) * s }
            }
        }
    }
}

extension Tape {
    /// RMSNorm, in place, of the `heads` heads of `headDim` columns that start at `column` of
    /// `x` [N, ≥ column + heads·headDim], with one `weight` [headDim] for every head.
    public func headRMSNormInPlace(_ x: Tensor, column: Int, heads: Int, headDim hd: Int, weight: Tensor, eps: Float) {
        precondition(weight.count == hd, "headRMSNorm: weight size \(weight.count) != head dimension \(hd)")
        precondition(column >= 0 && column + heads * hd <= x.columns,
                     "headRMSNorm: \(heads) heads of \(hd) from column \(column) in \(x.columns) columns")
        let n = x.rows, ld = x.columns
        let wantsGrad = recording && (x.requiresGrad || weight.requiresGrad)
        let saved = wantsGrad ? output([n * heads, hd]) : nil
        let rstd = output([n * heads])
        HeadRMSNormKernels.forward(x: x.data, ld: ld, column: column, tokens: n, heads: heads, headDim: hd,
                                   weight: weight.data, eps: eps, saved: saved?.data, rstd: rstd.data)
        guard let saved else { return }
        let inputGradient = x.requiresGrad
        let backward = {
            HeadRMSNormKernels.backward(grad: x.grad, ld: ld, column: column, tokens: n, heads: heads, headDim: hd,
                                        weight: weight.data, saved: saved.data, rstd: rstd.data,
                                        dweight: weight.requiresGrad ? weight.grad : nil, inputGradient: inputGradient)
        }
        // As `addLoRATerms`: when the op that produced x recorded its backward, that one releases
        // x's gradient; otherwise (x from frozen weights, only the norm trained) this one does.
        if x.requiresGrad {
            _ = record([x, weight], backward)
        } else {
            x.requiresGrad = record([x, weight], output: x, backward)
        }
    }
}
