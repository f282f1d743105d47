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
            for r in 0..<n {
                let o = out + r * oc
                for j in 0..<oc { o[j] += bias[j] }
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
        if let dbias {
            for r in 0..<n {
                let d = dout + r * oc
                for j in 0..<oc { dbias[j] += d[j] }
            }
        }
    }
}

extension Tape {
    /// x: [..., IC] → [..., OC].
    public func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, layout: WeightLayout) -> Tensor {
        let ic = x.columns, n = x.rows
        precondition(weight.shape.count == 2, "linear: weight must be 2-D, got \(weight.shape)")
        let oc = layout == .outIn ? weight.shape[0] : weight.shape[1]
        let wIn = layout == .outIn ? weight.shape[1] : weight.shape[0]
        precondition(wIn == ic, "linear: input has \(ic) features, weight \(weight.shape) expects \(wIn)")
        if let bias { precondition(bias.count == oc, "linear: bias \(bias.shape) for \(oc) outputs") }
        let out = Tensor(zeros: Array(x.shape.dropLast()) + [oc])
        LinearKernels.forward(out: out.data, x: x.data, w: weight.data, bias: bias?.data,
                              n: n, inFeatures: ic, outFeatures: oc, layout: layout)
        out.requiresGrad = record([x, weight] + (bias.map { [$0] } ?? [])) {
            LinearKernels.backward(dx: x.requiresGrad ? x.grad : nil,
                                   dw: weight.requiresGrad ? weight.grad : nil,
                                   dbias: bias.flatMap { $0.requiresGrad ? $0.grad : nil },
                                   dout: out.grad, x: x.data, w: weight.data,
                                   n: n, inFeatures: ic, outFeatures: oc, layout: layout)
        }
        return out
    }
}
