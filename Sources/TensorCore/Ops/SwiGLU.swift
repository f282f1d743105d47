import Foundation

/// The gated MLP activation of the Llama family (Shazeer 2020, "GLU Variants Improve
/// Transformer"): out = silu(gate) ⊙ up, silu(x) = x·σ(x). Hugging Face's `LlamaMLP` computes
/// `down_proj(act_fn(gate_proj(x)) * up_proj(x))` with `hidden_act: "silu"`; fusing the
/// activation and the product saves one [N, intermediate] activation and one pass over it.
///
/// σ comes from the 8-wide `Vec.expFused` (|relative error| < 1.5e-7; fused multiply-adds, as
/// GELU's, where the loop is compute-bound), eight elements at a time; the tail (fewer than 8)
/// is padded into one vector, so every element gets the same bits wherever it sits in the
/// buffer (a micro-batch split never changes them).
public enum SwiGLUKernels {
    /// σ(g) for eight gates.
    @inline(__always) static func sigmoid(_ g: F8) -> F8 { 1 / (1 + Vec.expFused(-g)) }

    /// The last `n` (< 8) gates as one vector, padded with 0 (the padding lanes are never stored).
    @inline(__always) static func tail(_ p: UnsafePointer<Float>, _ n: Int) -> F8 {
        var v = F8(repeating: 0)
        for j in 0..<n { v[j] = p[j] }
        return v
    }

    // Plain loops, not a per-vector closure: handed to a helper, the closure stayed a call per
    // eight elements (its constants reloaded, the vector passed in two halves, `vzeroupper`).
    public static func forward(out: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>,
                               up: UnsafePointer<Float>, count: Int) {
        var i = 0
        while i + 8 <= count {
            let g = Vec.load(gate + i)
            Vec.store(g * sigmoid(g) * Vec.load(up + i), out + i)
            i += 8
        }
        guard i < count else { return }
        let g = tail(gate + i, count - i), silu = g * sigmoid(g)
        for j in 0..<(count - i) { out[i + j] = silu[j] * up[i + j] }
    }

    /// dgate += dout·up·silu'(g), silu'(g) = σ(g)·(1 + g·(1 − σ(g)));  dup += dout·silu(g).
    /// `accumulate: false` writes (=) them instead, for buffers that hold nothing yet
    /// (`Tensor.gradForWriting`): the same bits as adding to zeros, without reading them.
    public static func backward(dgate: UnsafeMutablePointer<Float>?, dup: UnsafeMutablePointer<Float>?,
                                dout: UnsafePointer<Float>, gate: UnsafePointer<Float>,
                                up: UnsafePointer<Float>, count: Int, accumulate: Bool = true) {
        var i = 0
        while i + 8 <= count {
            let g = Vec.load(gate + i), s = sigmoid(g)
            let dsilu = s * (1 + g * (1 - s)), silu = g * s
            let d = Vec.load(dout + i)
            if let dgate {
                let x = d * Vec.load(up + i) * dsilu
                Vec.store(accumulate ? Vec.load(dgate + i) + x : x, dgate + i)
            }
            if let dup {
                let x = d * silu
                Vec.store(accumulate ? Vec.load(dup + i) + x : x, dup + i)
            }
            i += 8
        }
        guard i < count else { return }
        let g = tail(gate + i, count - i), s = sigmoid(g)
        let dsilu = s * (1 + g * (1 - s)), silu = g * s
        for j in 0..<(count - i) {
            if let dgate { let x = dout[i + j] * up[i + j] * dsilu[j]; dgate[i + j] = accumulate ? dgate[i + j] + x : x }
            if let dup { let x = dout[i + j] * silu[j]; dup[i + j] = accumulate ? dup[i + j] + x : x }
        }
    }
}

extension Tape {
    /// silu(gate) ⊙ up, elementwise over same-shaped tensors.
    public func swiglu(gate: Tensor, up: Tensor) -> Tensor {
        precondition(gate.shape == up.shape, "swiglu: gate \(gate.shape) and up \(up.shape) differ")
        let out = output(gate.shape)
        SwiGLUKernels.forward(out: out.data, gate: gate.data, up: up.data, count: gate.count)
        out.requiresGrad = record([gate, up], output: out) {
            SwiGLUKernels.backward(dgate: gate.requiresGrad ? gate.grad : nil, dup: up.requiresGrad ? up.grad : nil,
                                   dout: out.grad, gate: gate.data, up: up.data, count: gate.count)
        }
        return out
    }
}
