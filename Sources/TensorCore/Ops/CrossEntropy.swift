import Foundation

/// Row-wise log-softmax and the masked softmax cross-entropy.
///
/// The loss is Σ_n mask[n]·(−log p[n, target[n]]) / normalizer, where the normalizer is
/// supplied by the caller: in data-parallel training it is the *global* number of loss
/// tokens, so summing every rank's loss gives the true mean and the gradient allreduce
/// needs no further scaling. Rows with mask 0 (prompt, padding) contribute nothing.
public enum SoftmaxKernels {
    /// out[n, :] = log softmax(logits[n, :]), in place allowed.
    public static func logSoftmax(out: UnsafeMutablePointer<Float>, logits: UnsafePointer<Float>,
                                  rows: Int, vocab V: Int) {
        for r in 0..<rows {
            let z = logits + r * V, o = out + r * V
            let lse = logSumExp(z, count: V)
            let lv = F8(repeating: lse)
            var j = 0
            while j + 8 <= V { Vec.store(Vec.load(z + j) - lv, o + j); j += 8 }
            while j < V { o[j] = z[j] - lse; j += 1 }
        }
    }

    /// log Σ_j e^{z_j}, max-shifted; the sum of exponentials accumulates per 8-lane block.
    public static func logSumExp(_ z: UnsafePointer<Float>, count V: Int) -> Float {
        let (m, s) = expSum(z, into: nil, count: V)
        return m + Float(log(s))
    }

    /// max z and Σ_j exp(z_j − max z) (summed in Float lanes, then in Double), also storing
    /// each exp(z_j − max z) in `e` when given (a softmax that needs them again).
    public static func expSum(_ z: UnsafePointer<Float>, into e: UnsafeMutablePointer<Float>?,
                              count V: Int) -> (max: Float, sum: Double) {
        let m = Vec.maximum(z, count: V)
        let mv = F8(repeating: m)
        var acc = F8(repeating: 0)
        var j = 0
        if let e {
            while j + 8 <= V { let x = Vec.exp(Vec.load(z + j) - mv); Vec.store(x, e + j); acc += x; j += 8 }
        } else {
            while j + 8 <= V { acc += Vec.exp(Vec.load(z + j) - mv); j += 8 }
        }
        var s = Double(Vec.sum(acc))
        while j < V {
            let x = expf(z[j] - m)
            e?[j] = x
            s += Double(x)
            j += 1
        }
        return (m, s)
    }

    /// Masked cross-entropy sum (not yet normalised) and, if `dlogits` is given, its
    /// gradient ∂/∂z = (softmax(z) − onehot(y))·mask·scale, accumulated.
    public static func crossEntropy(logits: UnsafePointer<Float>, targets: [Int32], mask: [Float],
                                    rows: Int, vocab V: Int, dlogits: UnsafeMutablePointer<Float>?,
                                    scale: Float) -> Double {
        var total: Double = 0
        for r in 0..<rows where mask[r] != 0 {
            let y = Int(targets[r])
            precondition(y >= 0 && y < V, "crossEntropy: target \(y) outside vocab \(V)")
            let z = logits + r * V
            let lse = logSumExp(z, count: V)
            total += Double((lse - z[y]) * mask[r])
            if let d = dlogits {
                let w = mask[r] * scale
                let dr = d + r * V
                let lv = F8(repeating: lse), wv = F8(repeating: w)
                var j = 0
                while j + 8 <= V { Vec.store(Vec.load(dr + j) + Vec.exp(Vec.load(z + j) - lv) * wv, dr + j); j += 8 }
                while j < V { dr[j] += expf(z[j] - lse) * w; j += 1 }
                dr[y] -= w
            }
        }
        return total
    }
}

extension Tape {
    /// Scalar loss Σ mask·(−log p_y) / normalizer (for tests and plain NLL training).
    public func crossEntropy(_ logits: Tensor, targets: [Int32], mask: [Float], normalizer: Float) -> Tensor {
        let rows = logits.rows, V = logits.columns
        precondition(targets.count == rows && mask.count == rows, "crossEntropy: \(rows) rows, \(targets.count) targets")
        let loss = Tensor(zeros: [1])
        loss.data[0] = Float(SoftmaxKernels.crossEntropy(logits: logits.data, targets: targets, mask: mask,
                                                         rows: rows, vocab: V, dlogits: nil, scale: 0)) / normalizer
        loss.requiresGrad = record([logits]) {
            // Accumulates straight into the logits' gradient (+=, like every backward kernel).
            _ = SoftmaxKernels.crossEntropy(logits: logits.data, targets: targets, mask: mask,
                                            rows: rows, vocab: V, dlogits: logits.grad, scale: loss.grad[0] / normalizer)
        }
        return loss
    }
}
