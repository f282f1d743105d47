import Foundation

/// GELU, tanh approximation (GPT-2's `gelu_new`, llm.c's gelu):
/// y = ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
public enum GELUKernels {
    static let s = Float((2.0 / Double.pi).squareRoot())

    public static func forward(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, count: Int) {
        for i in 0..<count {
            let v = x[i]
            out[i] = 0.5 * v * (1 + tanhf(s * (v + 0.044715 * v * v * v)))
        }
    }

    public static func backward(dx: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
                                dout: UnsafePointer<Float>, count: Int) {
        for i in 0..<count {
            let v = x[i]
            let u = s * (v + 0.044715 * v * v * v)
            let t = tanhf(u)
            let sech2 = 1 - t * t
            let local = 0.5 * (1 + t) + 0.5 * v * sech2 * s * (1 + 3 * 0.044715 * v * v)
            dx[i] += local * dout[i]
        }
    }
}

extension Tape {
    public func gelu(_ x: Tensor) -> Tensor {
        let out = Tensor(zeros: x.shape)
        GELUKernels.forward(out: out.data, x: x.data, count: x.count)
        out.requiresGrad = record([x]) {
            GELUKernels.backward(dx: x.grad, x: x.data, dout: out.grad, count: x.count)
        }
        return out
    }
}
