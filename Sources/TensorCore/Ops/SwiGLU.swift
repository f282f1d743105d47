import Foundation

/// The gated MLP activation of the Llama family (Shazeer 2020, "GLU Variants Improve
/// Transformer"): out = silu(gate) ⊙ up, silu(x) = x·σ(x). Hugging Face's `LlamaMLP` computes
/// `down_proj(act_fn(gate_proj(x)) * up_proj(x))` with `hidden_act: "silu"`; fusing the
/// activation and the product saves one [N, intermediate] activation and one pass over it.
public enum SwiGLUKernels {
    @inline(__always) static func sigmoid(_ x: Float) -> Float { 1 / (1 + expf(-x)) }

    public static func forward(out: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>,
                               up: UnsafePointer<Float>, count: Int) {
        for i in 0..<count {
            let g = gate[i]
            out[i] = g * sigmoid(g) * up[i]
        }
    }

    /// dgate += dout·up·silu'(g), silu'(g) = σ(g)·(1 + g·(1 − σ(g)));  dup += dout·silu(g).
    public static func backward(dgate: UnsafeMutablePointer<Float>?, dup: UnsafeMutablePointer<Float>?,
                                dout: UnsafePointer<Float>, gate: UnsafePointer<Float>,
                                up: UnsafePointer<Float>, count: Int) {
        for i in 0..<count {
            let g = gate[i], s = sigmoid(g)
            if let dgate { dgate[i] += dout[i] * up[i] * s * (1 + g * (1 - s)) }
            if let dup { dup[i] += dout[i] * g * s }
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
