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
            var m = -Float.infinity
            for j in 0..<V { m = max(m, z[j]) }
            var s: Double = 0
            for j in 0..<V { s += Double(expf(z[j] - m)) }
            let lse = m + Float(log(s))
            for j in 0..<V { o[j] = z[j] - lse }
        }
    }

    /// Masked cross-entropy sum (not yet normalised) and, if `dlogits` is given, its
    /// gradient ∂/∂z = (softmax(z) − onehot(y))·mask·scale, accumulated.
    public static func crossEntropy(logits: UnsafePointer<Float>, targets: [Int32], mask: [Float],
                                    rows: Int, vocab V: Int, dlogits: UnsafeMutablePointer<Float>?,
                                    scale: Float) -> Double {
        var total: Double = 0
        var row = [Float](repeating: 0, count: V)
        for r in 0..<rows where mask[r] != 0 {
            let y = Int(targets[r])
            precondition(y >= 0 && y < V, "crossEntropy: target \(y) outside vocab \(V)")
            row.withUnsafeMutableBufferPointer { lp in
                logSoftmax(out: lp.baseAddress!, logits: logits + r * V, rows: 1, vocab: V)
                total += Double(-lp[y] * mask[r])
                if let d = dlogits {
                    let w = mask[r] * scale
                    let dr = d + r * V
                    for j in 0..<V { dr[j] += expf(lp[j]) * w }
                    dr[y] -= w
                }
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
            let d = UnsafeMutablePointer<Float>.allocate(capacity: rows * V)
            d.initialize(repeating: 0, count: rows * V)
            defer { d.deallocate() }
            _ = SoftmaxKernels.crossEntropy(logits: logits.data, targets: targets, mask: mask,
                                            rows: rows, vocab: V, dlogits: d, scale: loss.grad[0] / normalizer)
            let g = logits.grad
            for i in 0..<(rows * V) { g[i] += d[i] }
        }
        return loss
    }
}
