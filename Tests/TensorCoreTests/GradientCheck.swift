import TestSupport
import XCTest
@testable import TensorCore

/// Finite-difference check of an op's hand-written backward kernel.
///
/// L = Σ out·r for a fixed random r, so dL/d out = r exercises every output element.
/// Central differences in float32, Richardson-extrapolated (TestSupport), on up to 100
/// coordinates of each input; every one must agree per entry: within `tolerance` of the larger
/// of the two, plus a floor of 1e-3 of the input's largest gradient for entries that are zero
/// up to float32 round-off.
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
        let floor = 1e-3 * Double(max(analytic[k].map(abs).max() ?? 0, 1e-3))
        var failures = 0
        for i in Swift.stride(from: 0, to: t.count, by: max(1, t.count / 100)) {
            let numeric = richardsonDerivative(t.data + i, h: eps, loss)
            let a = Double(analytic[k][i])
            if !derivativesAgree(numeric, a, relative: Double(tolerance), floor: floor) {
                failures += 1
                if failures <= 3 {
                    XCTFail("input \(k) shape \(t.shape) [\(i)]: analytic \(a), numeric \(numeric)", file: file, line: line)
                }
            }
        }
    }
}

func randomTensor(_ shape: [Int], _ rng: inout RNG, std: Float = 1, requiresGrad: Bool = true) -> Tensor {
    let t = Tensor(zeros: shape, requiresGrad: requiresGrad)
    for i in 0..<t.count { t.data[i] = rng.normal() * std }
    return t
}
