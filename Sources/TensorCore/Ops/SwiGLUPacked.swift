extension Tape {
    /// silu(gate) ⊙ up on a packed gate|up projection `gateUp` [N, 2·I] (the Llama MLP's fused
    /// gate/up GEMM): row n's gate is columns [0, I), its up [I, 2I). Returns [N, I]. The
    /// same kernel as `swiglu(gate:up:)` row by row; it pads only a row's tail, so each
    /// element gets the same bits as there.
    public func swiglu(gateUp: Tensor) -> Tensor {
        precondition(gateUp.columns % 2 == 0, "swiglu: packed gate|up has \(gateUp.columns) columns")
        let n = gateUp.rows, i = gateUp.columns / 2
        let out = output([n, i])
        let (o, x) = (out.data, gateUp.data)
        Parallel.forRows(n, width: i) { rows in
            for r in rows { SwiGLUKernels.forward(out: o + r * i, gate: x + 2 * r * i, up: x + 2 * r * i + i, count: i) }
        }
        out.requiresGrad = record([gateUp], output: out) {
            // Its only consumer in the Llama MLP: gate|up's gradient is written, not cleared and added to.
            let (d, (g, accumulate)) = (out.grad, gateUp.gradForWriting())
            Parallel.forRows(n, width: i) { rows in
                for r in rows {
                    SwiGLUKernels.backward(dgate: g + 2 * r * i, dup: g + 2 * r * i + i, dout: d + r * i,
                                           gate: x + 2 * r * i, up: x + 2 * r * i + i, count: i, accumulate: accumulate)
                }
            }
        }
        return out
    }
}
