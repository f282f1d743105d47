/// LayerNorm over the last dimension: y = (x − μ)·rstd·w + b, rstd = 1/√(var + eps).
/// Forward saves μ and rstd per row (llm.c's layout) so backward needs no recomputation.
/// Rows are split over the `Parallel` threads; each row is 8-wide SIMD.
public enum LayerNormKernels {
    public static func forward(out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>,
                               rstd: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                               rows: Int, dim c: Int, eps: Float) {
        Parallel.forRanges(rows, minChunk: 16) { range in
            for r in range {
                let xr = x + r * c, o = out + r * c
                let m = Vec.total(xr, count: c) / Float(c)
                var j = 0
                var acc = F8(repeating: 0)
                let mv = F8(repeating: m)
                while j + 8 <= c { let d = Vec.load(xr + j) - mv; acc += d * d; j += 8 }
                var v = Vec.sum(acc)
                while j < c { let d = xr[j] - m; v += d * d; j += 1 }
                v /= Float(c)
                let s = 1 / (v + eps).squareRoot()
                let sv = F8(repeating: s)
                j = 0
                while j + 8 <= c {
                    Vec.store((Vec.load(xr + j) - mv) * sv * Vec.load(weight + j) + Vec.load(bias + j), o + j)
                    j += 8
                }
                while j < c { o[j] = (xr[j] - m) * s * weight[j] + bias[j]; j += 1 }
                mean[r] = m
                rstd[r] = s
            }
        }
    }

    /// dx per row (rows split over the threads) and dweight/dbias summed over the rows in
    /// order, from a zeroed partial that is then added: at one thread in the same pass as dx;
    /// at several, columns split over the threads in a second pass, so every result has the
    /// one-thread bits at any thread count (per-thread partials added in thread order did not).
    public static func backward(dx: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?,
                                dbias: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>,
                                x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                rows: Int, dim c: Int) {
        let partial = Scratch.shared.floats(slot: 0, count: 2 * c)
        partial.update(repeating: 0, count: 2 * c)
        let dw = partial, db = partial + c
        if Parallel.threads == 1 || Parallel.active {
            for r in 0..<rows {
                backwardRow(r, dx: dx, dw: dw, db: db, dout: dout, x: x, weight: weight, mean: mean, rstd: rstd, dim: c)
            }
        } else {
            if dx != nil {
                Parallel.forRanges(rows, minChunk: 16) { range in
                    for r in range {
                        backwardRow(r, dx: dx, dw: nil, db: nil, dout: dout, x: x, weight: weight, mean: mean, rstd: rstd, dim: c)
                    }
                }
            }
            Parallel.forColumns(c, rows: rows) { cols in
                for r in 0..<rows {
                    let xr = x + r * c, d = dout + r * c
                    let m = mean[r], s = rstd[r]
                    for j in cols {
                        let norm = (xr[j] - m) * s
                        db[j] += d[j]; dw[j] += norm * d[j]
                    }
                }
            }
        }
        if let dweight { Vec.add(dweight, dw, count: c) }
        if let dbias { Vec.add(dbias, db, count: c) }
    }

    /// Row r: the two reductions and dx (when given); with `dw`/`db` also the row's share of
    /// the weight and bias gradients, added in the same pass.
    @inline(__always)
    static func backwardRow(_ r: Int, dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>?,
                            db: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>, x: UnsafePointer<Float>,
                            weight: UnsafePointer<Float>, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, dim c: Int) {
        let xr = x + r * c, d = dout + r * c
        let m = mean[r], s = rstd[r]
        let mv = F8(repeating: m), sv = F8(repeating: s)
        // Two reductions: mean of dnorm and mean of dnorm·norm.
        var a1 = F8(repeating: 0), a2 = F8(repeating: 0)
        var j = 0
        while j + 8 <= c {
            let norm = (Vec.load(xr + j) - mv) * sv
            let dv = Vec.load(d + j)
            let dnorm = Vec.load(weight + j) * dv
            a1 += dnorm; a2 += dnorm * norm
            if let db, let dw {
                Vec.store(Vec.load(db + j) + dv, db + j)
                Vec.store(Vec.load(dw + j) + norm * dv, dw + j)
            }
            j += 8
        }
        var dnormMean = Vec.sum(a1), dnormNormMean = Vec.sum(a2)
        while j < c {
            let norm = (xr[j] - m) * s
            let dnorm = weight[j] * d[j]
            dnormMean += dnorm; dnormNormMean += dnorm * norm
            if let db, let dw { db[j] += d[j]; dw[j] += norm * d[j] }
            j += 1
        }
        dnormMean /= Float(c)
        dnormNormMean /= Float(c)
        guard let dx else { return }
        let dxr = dx + r * c
        let m1 = F8(repeating: dnormMean), m2 = F8(repeating: dnormNormMean)
        j = 0
        while j + 8 <= c {
            let norm = (Vec.load(xr + j) - mv) * sv
            let dnorm = Vec.load(weight + j) * Vec.load(d + j)
            Vec.store(Vec.load(dxr + j) + (dnorm - m1 - norm * m2) * sv, dxr + j)
            j += 8
        }
        while j < c {
            let norm = (xr[j] - m) * s
            dxr[j] += (weight[j] * d[j] - dnormMean - norm * dnormNormMean) * s
            j += 1
        }
    }
}

extension Tape {
    public func layerNorm(_ x: Tensor, weight: Tensor, bias: Tensor, eps: Float = 1e-5) -> Tensor {
        let c = x.columns, rows = x.rows
        precondition(weight.count == c && bias.count == c, "layerNorm: weight/bias size != \(c)")
        let out = output(x.shape)
        let mean = output([rows]), rstd = output([rows])
        LayerNormKernels.forward(out: out.data, mean: mean.data, rstd: rstd.data, x: x.data,
                                 weight: weight.data, bias: bias.data, rows: rows, dim: c, eps: eps)
        out.requiresGrad = record([x, weight, bias], output: out) {
            LayerNormKernels.backward(dx: x.requiresGrad ? x.grad : nil,
                                      dweight: weight.requiresGrad ? weight.grad : nil,
                                      dbias: bias.requiresGrad ? bias.grad : nil,
                                      dout: out.grad, x: x.data, weight: weight.data,
                                      mean: mean.data, rstd: rstd.data, rows: rows, dim: c)
        }
        return out
    }
}
