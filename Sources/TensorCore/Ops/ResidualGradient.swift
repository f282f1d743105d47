extension Tensor {
    /// dL/d(this) += dL/d(out) for a residual link out = this + f(…) (`linear(residual:)`),
    /// called after f's backward has read out's gradient for the last time. While this
    /// tensor holds no gradient yet, out's buffer simply becomes its gradient (`takeGradient`,
    /// same arena) or is copied into an uncleared one (`gradForWriting`, another arena, as under
    /// `Tape.recomputed`): the values 0 + d would have had, without clearing a buffer and
    /// adding to it. Otherwise it is added, as before.
    public func receiveResidualGradient(of out: Tensor) {
        precondition(out.count == count, "residual gradient: \(out.shape) into \(shape)")
        if takeGradient(of: out) { return }
        let ((g, accumulate), d) = (gradForWriting(), out.grad)
        Parallel.forRanges(count, minChunk: 16384, align: 8) { r in
            if accumulate {
                Vec.add(g + r.lowerBound, d + r.lowerBound, count: r.count)
            } else {
                (g + r.lowerBound).update(from: d + r.lowerBound, count: r.count)
            }
        }
    }
}
