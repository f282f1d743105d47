/// Elementwise sum of two same-shaped tensors (the residual stream). Backward passes dout
/// through to both inputs unchanged.
extension Tape {
    public func add(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.count == b.count, "add: shapes \(a.shape) and \(b.shape) differ")
        let out = Tensor(zeros: a.shape)
        let n = a.count
        for i in 0..<n { out.data[i] = a.data[i] + b.data[i] }
        out.requiresGrad = record([a, b]) {
            let d = out.grad
            if a.requiresGrad { let g = a.grad; for i in 0..<n { g[i] += d[i] } }
            if b.requiresGrad { let g = b.grad; for i in 0..<n { g[i] += d[i] } }
        }
        return out
    }
}
