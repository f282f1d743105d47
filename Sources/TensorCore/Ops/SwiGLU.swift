import Foundation

/// The gated MLP activation of the Llama family (Shazeer 2020, "GLU Variants Improve
/// Transformer"): out = silu(gate) ⊙ up, silu(x) = x·σ(x). Hugging Face's `LlamaMLP` computes
/// `down_proj(act_fn(gate_proj(x)) * up_proj(x))` with `hidden_act: "silu"`; fusing the
/// activation and the product saves one [N, intermediate] activation and one pass over it.
///
/// σ comes from the 8-wide `Vec.exp` (|relative error| < 2e-7, as `expf`'s ≈ 1 ulp), eight
/// elements at a time; the tail (fewer than 8) is padded into one vector, so every element
/// gets the same bits wherever it sits in the buffer (a micro-batch split never changes them).
public enum SwiGLUKernels {
    /// σ(g) for eight gates.
    @inline(__always) static func sigmoid(_ g: F8) -> F8 { 1 / (1 + Vec.exp(-g)) }

    /// Runs `body(i, n)` on the vector at `i` (n = 8) and on the tail (n < 8), each with its
    /// gates loaded as one vector (the tail's padding lanes are 0 and never stored).
    @inline(__always) static func forEachVector(_ gate: UnsafePointer<Float>, count: Int, _ body: (Int, Int, F8) -> Void) {
        var i = 0
        while i + 8 <= count { body(i, 8, Vec.load(gate + i)); i += 8 }
        if i < count {
            var g = F8(repeating: 0)
            for j in 0..<(count - i) { g[j] = gate[i + j] }
            body(i, count - i, g)
        }
    }

    public static func forward(out: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>,
                               up: UnsafePointer<Float>, count: Int) {
        forEachVector(gate, count: count) { i, n, g in
            let silu = g * sigmoid(g)
            if n == 8 { Vec.store(silu * Vec.load(up + i), out + i); return }
            for j in 0..<n { out[i + j] = silu[j] * up[i + j] }
        }
    }

    /// dgate += dout·up·silu'(g), silu'(g) = σ(g)·(1 + g·(1 − σ(g)));  dup += dout·silu(g).
    public static func backward(dgate: UnsafeMutablePointer<Float>?, dup: UnsafeMutablePointer<Float>?,
                                dout: UnsafePointer<Float>, gate: UnsafePointer<Float>,
                                up: UnsafePointer<Float>, count: Int) {
        forEachVector(gate, count: count) { i, n, g in
            let s = sigmoid(g)
            let dsilu = s * (1 + g * (1 - s)), silu = g * s
            if n == 8 {
                let d = Vec.load(dout + i)
                if let dgate { Vec.store(Vec.load(dgate + i) + d * Vec.load(up + i) * dsilu, dgate + i) }
                if let dup { Vec.store(Vec.load(dup + i) + d * silu, dup + i) }
                return
            }
            for j in 0..<n {
                if let dgate { dgate[i + j] += dout[i + j] * up[i + j] * dsilu[j] }
                if let dup { dup[i + j] += dout[i + j] * silu[j] }
            }
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
