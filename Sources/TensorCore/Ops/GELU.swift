import Foundation

/// GELU, tanh approximation (GPT-2's `gelu_new`, llm.c's gelu):
/// y = ½x(1 + tanh(√(2/π)(x + 0.044715x³))). 8-wide SIMD tanh, split over threads.
public enum GELUKernels {
    static let s = Float((2.0 / Double.pi).squareRoot())

    public static func forward(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, count: Int) {
        Parallel.forRanges(count, minChunk: 4096, align: 8) { r in
            var i = r.lowerBound
            let sv = F8(repeating: s), c1 = F8(repeating: 0.044715), half = F8(repeating: 0.5), one = F8(repeating: 1)
            while i + 8 <= r.upperBound {
                let v = Vec.load(x + i)
                let inner: F8 = sv * (v + c1 * v * v * v)
                let t = Vec.tanh(inner)
                Vec.store(half * v * (one + t), out + i)
                i += 8
            }
            while i < r.upperBound {
                let v = x[i]
                out[i] = 0.5 * v * (1 + tanhf(s * (v + 0.044715 * v * v * v)))
                i += 1
            }
        }
    }

    /// dx += gelu'(x)·dout; `accumulate: false` writes (=) it instead, into a buffer that holds
    /// nothing yet (`Tensor.gradForWriting`): the bits of adding to zeros, without reading them.
    public static func backward(dx: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
                                dout: UnsafePointer<Float>, count: Int, accumulate: Bool = true) {
        Parallel.forRanges(count, minChunk: 4096, align: 8) { r in
            var i = r.lowerBound
            let sv = F8(repeating: s), c1 = F8(repeating: 0.044715), c3 = F8(repeating: 3 * 0.044715)
            let half = F8(repeating: 0.5), one = F8(repeating: 1)
            while i + 8 <= r.upperBound {
                let v = Vec.load(x + i)
                let v2: F8 = v * v
                let inner: F8 = sv * (v + c1 * v2 * v)
                let t = Vec.tanh(inner)
                let sech2: F8 = one - t * t
                let a: F8 = half * (one + t)
                let b: F8 = half * v * sech2 * sv * (one + c3 * v2)
                let local: F8 = a + b
                let d = local * Vec.load(dout + i)
                Vec.store(accumulate ? Vec.load(dx + i) + d : d, dx + i)
                i += 8
            }
            while i < r.upperBound {
                let v = x[i]
                let t = tanhf(s * (v + 0.044715 * v * v * v))
                let sech2 = 1 - t * t
                let local = 0.5 * (1 + t) + 0.5 * v * sech2 * s * (1 + 3 * 0.044715 * v * v)
                dx[i] = accumulate ? dx[i] + local * dout[i] : local * dout[i]
                i += 1
            }
        }
    }
}

extension Tape {
    public func gelu(_ x: Tensor) -> Tensor {
        let out = output(x.shape)
        GELUKernels.forward(out: out.data, x: x.data, count: x.count)
        out.requiresGrad = record([x], output: out) {
            let (dx, accumulate) = x.gradForWriting()
            GELUKernels.backward(dx: dx, x: x.data, dout: out.grad, count: x.count, accumulate: accumulate)
        }
        return out
    }
}
