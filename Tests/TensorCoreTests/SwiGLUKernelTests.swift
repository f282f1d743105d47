import Foundation
import TensorCore
import XCTest

/// The vectorised SwiGLU kernels against the formula in double precision (silu(g)·u and its
/// two gradients) over gates from −90 to 90 and every tail length, and the same bits for an
/// element whether it sits in a full vector or in the padded tail.
final class SwiGLUKernelTests: XCTestCase {
    func sigmoid(_ g: Double) -> Double { 1 / (1 + Foundation.exp(-g)) }

    func testKernelsMatchTheFormulaAtEveryLengthAndRange() {
        var rng = RNG(seed: 41)
        for count in [1, 7, 8, 9, 16, 23, 100] {
            for scale: Float in [1, 8, 90] {
                let g = (0..<count).map { _ in (rng.uniform() * 2 - 1) * scale }
                let u = (0..<count).map { _ in rng.uniform() * 2 - 1 }
                let dout = (0..<count).map { _ in rng.uniform() * 2 - 1 }
                var out = [Float](repeating: .nan, count: count)
                var dg = [Float](repeating: 0.5, count: count), du = [Float](repeating: -0.25, count: count)
                SwiGLUKernels.forward(out: &out, gate: g, up: u, count: count)
                SwiGLUKernels.backward(dgate: &dg, dup: &du, dout: dout, gate: g, up: u, count: count)
                for i in 0..<count {
                    let x = Double(g[i]), s = sigmoid(x), label = "count \(count), scale \(scale), gate \(g[i])"
                    let y = x * s * Double(u[i])
                    let dgate = 0.5 + Double(dout[i]) * Double(u[i]) * s * (1 + x * (1 - s))
                    let dup = -0.25 + Double(dout[i]) * x * s
                    XCTAssertEqual(Double(out[i]), y, accuracy: 1e-6 * max(1, abs(y)), label)
                    XCTAssertEqual(Double(dg[i]), dgate, accuracy: 1e-6 * max(1, abs(dgate)), label)
                    XCTAssertEqual(Double(du[i]), dup, accuracy: 1e-6 * max(1, abs(dup)), label)
                }
            }
        }
    }

    func testAnElementGetsTheSameBitsInAVectorAndInTheTail() {
        var rng = RNG(seed: 5)
        let n = 256
        let g = (0..<n).map { _ in (rng.uniform() * 2 - 1) * 12 }, u = (0..<n).map { _ in rng.uniform() }
        var reference = [Float](repeating: 0, count: n)
        SwiGLUKernels.forward(out: &reference, gate: g, up: u, count: n)      // every element in a full vector
        var compared = 0
        for tail in 1..<8 {
            for start in stride(from: 0, to: n - 8 - tail, by: 8 + tail) {
                let count = 8 + tail                                            // elements start + 8 ..< start + count in the tail
                var out = [Float](repeating: 0, count: count)
                SwiGLUKernels.forward(out: &out, gate: Array(g[start..<(start + count)]), up: Array(u[start..<(start + count)]), count: count)
                for j in 8..<count where out[j].bitPattern != reference[start + j].bitPattern {
                    XCTFail("gate \(g[start + j]): \(out[j]) in the tail, \(reference[start + j]) in a vector")
                    return
                }
                compared += tail
            }
        }
        XCTAssertGreaterThan(compared, 400)
    }
}
