extension Tape {
    /// Rotary position embeddings (`rotary`, same kernel and tables) applied in place to the
    /// first `heads` head vectors of each row of `x` [N, ≥ heads·headDim]: on a packed q|k|v
    /// projection [N, (H + 2·KVH)·hd] with heads = H + KVH this rotates q and k together and
    /// leaves v, so no rotated copies of q and k are stored.
    ///
    /// Legal in place because no op reads the unrotated values in backward (the projection's
    /// backward needs its input and weight, not its output). Backward rotates `x`'s gradient
    /// back in place before the producing op's backward reads it.
    public func rotaryInPlace(_ x: Tensor, positions: [Int32], heads: Int, headDim: Int, theta: Float) {
        precondition(headDim % 2 == 0, "rotary: head dimension \(headDim) must be even")
        precondition(x.columns >= heads * headDim, "rotary: \(x.columns) columns for \(heads) heads of \(headDim)")
        precondition(positions.count == x.rows, "rotary: \(positions.count) positions for \(x.rows) rows")
        precondition((positions.min() ?? 0) >= 0, "rotary: negative position")
        let (c, s) = RotaryTables.shared.tables(maxPosition: Int(positions.max() ?? 0), headDim: headDim, theta: theta)
        let ld = x.columns
        RotaryKernels.rotate(out: x.data, x: x.data, positions: positions, heads: heads, headDim: headDim,
                             cos: c, sin: s, direction: 1, accumulate: false, ld: ld)
        // No output of its own: `x`'s gradient is released by the op that produced `x`.
        _ = record([x]) {
            RotaryKernels.rotate(out: x.grad, x: x.grad, positions: positions, heads: heads, headDim: headDim,
                                 cos: c, sin: s, direction: -1, accumulate: false, ld: ld)
        }
    }
}
