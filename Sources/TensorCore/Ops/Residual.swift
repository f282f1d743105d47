/// Elementwise sum of two same-shaped tensors (the residual stream). Backward passes dout
/// through to both inputs unchanged.
extension Tape {
    public func add(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.count == b.count, "add: shapes \(a.shape) and \(b.shape) differ")
        let out = output(a.shape)
        let n = a.count
        let (o, x, y) = (out.data, a.data, b.data)
        Parallel.forRanges(n, minChunk: 16384, align: 8) { r in
            Vec.sum(o + r.lowerBound, x + r.lowerBound, y + r.lowerBound, count: r.count)
        }
        out.requiresGrad = record([a, b], output: out) {
            let d = out.grad
            let ga = a.requiresGrad ? a.grad : nil, gb = b.requiresGrad ? b.grad : nil
            Parallel.forRanges(n, minChunk: 16384, align: 8) { r in
                if let ga { Vec.add(ga + r.lowerBound, d + r.lowerBound, count: r.count) }
                if let gb { Vec.add(gb + r.lowerBound, d + r.lowerBound, count: r.count) }
            }
        }
        return out
    }
}
