/// The output projection fused with a row-local loss, one chunk of rows at a time, so the
/// [N, V] logits (and their gradient) are never stored whole: per chunk of R rows,
///   logits = hidden[rows] · op(W)            (one GEMM, [R, V])
///   loss(rows, logits) fills dlogits         (split over the threads by rows)
///   hidden.grad[rows] += dlogits · op(W)ᵀ,   W.grad += (dlogits, hidden[rows]) product
/// and the chunk's buffers are reused for the next. The head's backward therefore runs here,
/// during the forward pass; `Tape.backward()` afterwards runs the rest of the model from the
/// hidden state's gradient. Peak memory is 2·R·V floats instead of 2·N·V.
public enum FusedHead {
    /// Rows per chunk: 256 × 8192 floats = 8 MiB per buffer, GEMMs still well shaped.
    public static let defaultRows = 256
    /// Chunk buffers larger than this (floats each, 64 MiB) are freed when the head is done
    /// instead of being kept for the next micro-batch: at Qwen2.5's 151,936-token vocabulary
    /// the two take 297 MiB, resident through the whole backward pass for nothing (the peak of
    /// a 0.5 B ZeRO-2 run, README "memory per rank"). Faulting them in again costs that
    /// model's step ≈ 0.4 % in 2 MiB pages (`Scratch`), 1.2 % in 4 KiB pages. Vocabularies up
    /// to 65,536 tokens keep theirs (the 135M shape's 48 MiB, gpt2-mini's 8 MiB): a shorter
    /// step would feel the refill more, and their buffers are small beside the activations.
    public static let keptChunkFloats = 1 << 24
}

extension Tape {
    /// `loss(thread, rows, logits, dlogits)`: `rows` are absolute row indices of `hidden`;
    /// `logits` and `dlogits` point at the first of them (row stride V; dlogits zeroed, to
    /// be accumulated into). It runs concurrently on every thread for disjoint rows.
    /// `lossWritesWholeRows`: the loss writes every entry of its rows' dlogits, so they are
    /// handed over uninitialised instead of zeroed (R·V floats per chunk not cleared).
    public func fusedHead(_ hidden: Tensor, weight: Tensor, layout: WeightLayout,
                          rowsPerChunk: Int = FusedHead.defaultRows, lossWritesWholeRows: Bool = false,
                          _ loss: (_ thread: Int, _ rows: Range<Int>, _ logits: UnsafePointer<Float>,
                                   _ dlogits: UnsafeMutablePointer<Float>) -> Void) {
        let n = hidden.rows, c = hidden.columns
        let V = layout == .outIn ? weight.shape[0] : weight.shape[1]
        precondition((layout == .outIn ? weight.shape[1] : weight.shape[0]) == c, "fusedHead: weight \(weight.shape) for \(c) features")
        let R = max(1, min(rowsPerChunk, n))
        let logits = Scratch.shared.floats(slot: 3, count: R * V)
        let dlogits = Scratch.shared.floats(slot: 4, count: R * V)
        let needX = recording && hidden.requiresGrad, needW = recording && weight.requiresGrad
        let threads = Parallel.threads
        var r0 = 0
        while r0 < n {
            let rows = min(R, n - r0)
            let x = hidden.data + r0 * c
            LinearKernels.forward(out: logits, x: x, w: weight.data, bias: nil, n: rows,
                                  inFeatures: c, outFeatures: V, layout: layout)
            let base = r0
            Parallel.onEachThread { t in
                let sub = Parallel.split(rows, parts: threads, index: t)
                guard !sub.isEmpty else { return }
                let d = dlogits + sub.lowerBound * V
                if !lossWritesWholeRows { d.update(repeating: 0, count: sub.count * V) }
                loss(t, (base + sub.lowerBound)..<(base + sub.upperBound), logits + sub.lowerBound * V, d)
            }
            if needX || needW {
                LinearKernels.backward(dx: needX ? hidden.grad + r0 * c : nil, dw: needW ? weight.grad : nil,
                                       dbias: nil, dout: dlogits, x: x, w: weight.data, n: rows,
                                       inFeatures: c, outFeatures: V, layout: layout)
            }
            r0 += rows
        }
        if R * V > FusedHead.keptChunkFloats {
            Scratch.shared.release(slot: 3)
            Scratch.shared.release(slot: 4)
        }
    }
}
