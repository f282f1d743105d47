/// Linear layer: out[N, OC] = x[N, IC] · W + b, as one `cblas_sgemm` over all N = B·T rows.
///
/// Weights keep the checkpoint's own layout so loading and exporting never transpose:
/// GPT-2's Conv1D stores W as [IC, OC] (`.inOut`), Llama's nn.Linear as [OC, IC] (`.outIn`).
/// The layout only picks the transpose flag of the GEMM.
public enum WeightLayout: Sendable {
    case outIn   // W is [OC, IC]: out = x · Wᵀ   (nn.Linear, tied lm_head)
    case inOut   // W is [IC, OC]: out = x · W    (GPT-2 Conv1D)
}

public enum LinearKernels {
    /// out[N,OC] = x[N,IC]·op(W) (+ bias[OC])
    public static func forward(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
                               w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                               n: Int, inFeatures ic: Int, outFeatures oc: Int, layout: WeightLayout) {
        BLAS.gemm(transA: false, transB: layout == .outIn, m: n, n: oc, k: ic,
                  a: x, lda: ic, b: w, ldb: layout == .outIn ? ic : oc, beta: 0, c: out, ldc: oc)
        if let bias {
            Parallel.forRows(n, width: oc) { rows in
                for r in rows { Vec.add(out + r * oc, bias, count: oc) }
            }
        }
    }

    /// dx += dout·op(W)ᵀ;  dW += (x ᵀ dout) in W's layout;  dbias += column sums of dout.
    public static func backward(dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>?,
                                dbias: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>,
                                x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                                n: Int, inFeatures ic: Int, outFeatures oc: Int, layout: WeightLayout) {
        if let dx {
            // [N,OC]·[OC,IC]: W as [OC,IC] is used directly, as [IC,OC] transposed.
            BLAS.gemm(transA: false, transB: layout == .inOut, m: n, n: ic, k: oc,
                      a: dout, lda: oc, b: w, ldb: layout == .outIn ? ic : oc, beta: 1, c: dx, ldc: ic)
        }
        if let dw {
            switch layout {
            case .outIn:  // dW[OC,IC] += doutᵀ[OC,N] · x[N,IC]
                BLAS.gemm(transA: true, transB: false, m: oc, n: ic, k: n,
                          a: dout, lda: oc, b: x, ldb: ic, beta: 1, c: dw, ldc: ic)
            case .inOut:  // dW[IC,OC] += xᵀ[IC,N] · dout[N,OC]
                BLAS.gemm(transA: true, transB: false, m: ic, n: oc, k: n,
                          a: x, lda: ic, b: dout, ldb: oc, beta: 1, c: dw, ldc: oc)
            }
        }
        if let dbias {  // column sums: each thread owns a block of columns
            Parallel.forColumns(oc, rows: n) { cols in
                for r in 0..<n { Vec.add(dbias + cols.lowerBound, dout + r * oc + cols.lowerBound, count: cols.count) }
            }
        }
    }
}

extension Tape {
    /// x: [..., IC] → [..., OC]. With `residual` (same shape as the output) the op is the
    /// residual-stream update out = residual + x·op(W) + b in one pass, so the projection's
    /// own output is never stored (GPT-2's attn/mlp c_proj).
    public func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, layout: WeightLayout,
                       residual: Tensor? = nil) -> Tensor {
        let ic = x.columns, n = x.rows
        precondition(weight.shape.count == 2, "linear: weight must be 2-D, got \(weight.shape)")
        let oc = layout == .outIn ? weight.shape[0] : weight.shape[1]
        let wIn = layout == .outIn ? weight.shape[1] : weight.shape[0]
        precondition(wIn == ic, "linear: input has \(ic) features, weight \(weight.shape) expects \(wIn)")
        if let bias { precondition(bias.count == oc, "linear: bias \(bias.shape) for \(oc) outputs") }
        if let residual { precondition(residual.count == n * oc, "linear: residual \(residual.shape) for [\(n), \(oc)]") }
        let out = output(Array(x.shape.dropLast()) + [oc])
        if let residual {
            LinearKernels.forward(out: out.data, x: x.data, w: weight.data, bias: nil,
                                  n: n, inFeatures: ic, outFeatures: oc, layout: layout)
            let (o, r, b) = (out.data, residual.data, bias?.data)
            Parallel.forRows(n, width: oc) { rows in
                for row in rows {
                    Vec.add(o + row * oc, r + row * oc, count: oc)
                    if let b { Vec.add(o + row * oc, b, count: oc) }
                }
            }
        } else {
            LinearKernels.forward(out: out.data, x: x.data, w: weight.data, bias: bias?.data,
                                  n: n, inFeatures: ic, outFeatures: oc, layout: layout)
        }
        var inputs = [x, weight]
        if let bias { inputs.append(bias) }
        if let residual { inputs.append(residual) }
        out.requiresGrad = record(inputs, output: out) {
            // The residual gets dout after the GEMMs, which no longer read it — unless it is x
            // itself, whose dx GEMM then adds onto it, as it always did.
            let addFirst = residual.map { $0.requiresGrad && $0 === x } ?? false
            if addFirst, let residual {
                let (g, d) = (residual.grad, out.grad)
                Parallel.forRanges(n * oc, minChunk: 16384, align: 8) { r in
                    Vec.add(g + r.lowerBound, d + r.lowerBound, count: r.count)
                }
            }
            LinearKernels.backward(dx: x.requiresGrad ? x.grad : nil,
                                   dw: weight.requiresGrad ? weight.grad : nil,
                                   dbias: bias.flatMap { $0.requiresGrad ? $0.grad : nil },
                                   dout: out.grad, x: x.data, w: weight.data,
                                   n: n, inFeatures: ic, outFeatures: oc, layout: layout)
            if !addFirst, let residual, residual.requiresGrad { residual.receiveResidualGradient(of: out) }
        }
        return out
    }
}
