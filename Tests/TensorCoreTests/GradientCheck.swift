import XCTest
@testable import TensorCore

/// Finite-difference check of an op's hand-written backward kernel.
///
/// L = Σ out·r for a fixed random r, so dL/d out = r exercises every output element.
/// Central differences in float32 (Richardson-extrapolated); the comparison is relative to the
/// larger of the two gradients' scale, which is what float32 differencing can resolve.
func checkGradients(_ inputs: [Tensor], eps: Float = 1e-2, tolerance: Float = 2e-2, seed: UInt64 = 7,
                    file: StaticString = #filePath, line: UInt = #line,
                    _ build: (Tape) -> Tensor) {
    var rng = RNG(seed: seed)
    let tape = Tape()
    let out = build(tape)
    let r = (0..<out.count).map { _ in rng.normal() }
    for t in inputs { t.grad.update(repeating: 0, count: t.count) }
    r.withUnsafeBufferPointer { tape.backward(from: out, seed: $0.baseAddress!) }
    let analytic = inputs.map { $0.gradValues }

    func loss() -> Double {
        let t = Tape(recording: false)
        let o = build(t)
        var s = 0.0
        for i in 0..<o.count { s += Double(o.data[i]) * Double(r[i]) }
        return s
    }
    for (k, t) in inputs.enumerated() {
        var maxErr: Float = 0, scale: Float = 1e-3
        // Check a bounded sample of coordinates so big tensors stay fast.
        let stride = max(1, t.count / 40)
        for i in Swift.stride(from: 0, to: t.count, by: stride) {
            let old = t.data[i]
            func central(_ h: Float) -> Double {
                t.data[i] = old + h; let lp = loss()
                t.data[i] = old - h; let lm = loss()
                t.data[i] = old
                return (lp - lm) / Double(2 * h)
            }
            // Richardson extrapolation of two central differences: O(eps⁴) truncation.
            let numeric = Float((4 * central(eps / 2) - central(eps)) / 3)
            maxErr = max(maxErr, abs(numeric - analytic[k][i]))
            scale = max(scale, abs(numeric), abs(analytic[k][i]))
        }
        XCTAssertLessThanOrEqual(maxErr / scale, tolerance,
                                 "input \(k) shape \(t.shape): max |analytic − numeric| = \(maxErr), scale \(scale)",
                                 file: file, line: line)
    }
}

func randomTensor(_ shape: [Int], _ rng: inout RNG, std: Float = 1, requiresGrad: Bool = true) -> Tensor {
    let t = Tensor(zeros: shape, requiresGrad: requiresGrad)
    for i in 0..<t.count { t.data[i] = rng.normal() * std }
    return t
}
