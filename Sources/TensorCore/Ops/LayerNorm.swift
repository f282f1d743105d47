/// LayerNorm over the last dimension: y = (x − μ)·rstd·w + b, rstd = 1/√(var + eps).
/// Forward saves μ and rstd per row (llm.c's layout) so backward needs no recomputation.
public enum LayerNormKernels {
    public static func forward(out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>,
                               rstd: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                               rows: Int, dim c: Int, eps: Float) {
        for r in 0..<rows {
            let xr = x + r * c, o = out + r * c
            var m: Float = 0
            for j in 0..<c { m += xr[j] }
            m /= Float(c)
            var v: Float = 0
            for j in 0..<c { let d = xr[j] - m; v += d * d }
            v /= Float(c)
            let s = 1 / (v + eps).squareRoot()
            for j in 0..<c { o[j] = (xr[j] - m) * s * weight[j] + bias[j] }
            mean[r] = m
            rstd[r] = s
        }
    }

    public static func backward(dx: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?,
                                dbias: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>,
                                x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                rows: Int, dim c: Int) {
        for r in 0..<rows {
            let xr = x + r * c, d = dout + r * c
            let m = mean[r], s = rstd[r]
            // Two reductions: mean of dnorm and mean of dnorm·norm.
            var dnormMean: Float = 0, dnormNormMean: Float = 0
            for j in 0..<c {
                let norm = (xr[j] - m) * s
                let dnorm = weight[j] * d[j]
                dnormMean += dnorm
                dnormNormMean += dnorm * norm
            }
            dnormMean /= Float(c)
            dnormNormMean /= Float(c)
            for j in 0..<c {
                let norm = (xr[j] - m) * s
                dbias?[j] += d[j]
                dweight?[j] += norm * d[j]
                if let dx {
                    let dnorm = weight[j] * d[j]
                    dx[r * c + j] += (dnorm - dnormMean - norm * dnormNormMean) * s
                }
            }
        }
    }
}

extension Tape {
    public func layerNorm(_ x: Tensor, weight: Tensor, bias: Tensor, eps: Float = 1e-5) -> Tensor {
        let c = x.columns, rows = x.rows
        precondition(weight.count == c && bias.count == c, "layerNorm: weight/bias size != \(c)")
        let out = Tensor(zeros: x.shape)
        let mean = Tensor(zeros: [rows]), rstd = Tensor(zeros: [rows])
        LayerNormKernels.forward(out: out.data, mean: mean.data, rstd: rstd.data, x: x.data,
                                 weight: weight.data, bias: bias.data, rows: rows, dim: c, eps: eps)
        out.requiresGrad = record([x, weight, bias]) {
            LayerNormKernels.backward(dx: x.requiresGrad ? x.grad : nil,
                                      dweight: weight.requiresGrad ? weight.grad : nil,
                                      dbias: bias.requiresGrad ? bias.grad : nil,
                                      dout: out.grad, x: x.data, weight: weight.data,
                                      mean: mean.data, rstd: rstd.data, rows: rows, dim: c)
        }
        return out
    }
}
