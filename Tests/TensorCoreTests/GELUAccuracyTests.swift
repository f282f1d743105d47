import Foundation
import TensorCore
import XCTest

/// GELU (tanh approximation) and its derivative against the same formulas in double precision,
/// x from −12 to 12 in steps of 1/256, relative to max(|reference|, 1e-3) (1e-2 for the derivative): the σ(2z) form the
/// kernels use keeps about 1e-6 everywhere, where ½x(1 + tanh z) with tanh z = 1 − 2/(e^{2z}+1)
/// lost up to 3e-4 for x ≲ −3 (the cancellation where GELU is small).
final class GELUAccuracyTests: XCTestCase {
    let x = (0..<(24 * 256 + 8)).map { Float(-12 + Double($0) / 256) }   // a multiple of 8 and a tail
    static let s = (2 / Double.pi).squareRoot()

    static func reference(_ v: Double) -> (y: Double, dy: Double) {
        let z = s * (v + 0.044715 * v * v * v), t = tanh(z)
        return (0.5 * v * (1 + t), 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * s * (1 + 3 * 0.044715 * v * v))
    }

    func worst(_ got: [Float], floor: Double, _ want: (Double) -> Double) -> (error: Double, at: Float) {
        var worst = (0.0, Float(0))
        for (v, g) in zip(x, got) {
            let r = want(Double(v)), e = abs(Double(g) - r) / max(abs(r), floor)
            if !(e <= worst.0) { worst = (e, v) }
        }
        return worst
    }

    func testForwardAndDerivativeMatchDoublePrecision() {
        var y = [Float](repeating: 0, count: x.count), dx = y
        let ones = [Float](repeating: 1, count: x.count)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { GELUKernels.forward(out: $0.baseAddress!, x: xp.baseAddress!, count: xp.count) }
            dx.withUnsafeMutableBufferPointer {
                GELUKernels.backward(dx: $0.baseAddress!, x: xp.baseAddress!, dout: ones, count: xp.count, accumulate: false)
            }
        }
        // The derivative crosses 0 at x ≈ −0.75 (σ + slope cancel there), so it is measured
        // relative to at least 0.01 (its values span −0.17 … 1.13).
        let f = worst(y, floor: 1e-3) { Self.reference($0).y }, d = worst(dx, floor: 1e-2) { Self.reference($0).dy }
        print("GELU, worst relative deviation from double: forward \(f.error) at \(f.at), derivative \(d.error) at \(d.at)")
        XCTAssertLessThan(f.error, 2e-6, "forward: worst at x = \(f.at)")
        XCTAssertLessThan(d.error, 4e-6, "derivative: worst at x = \(d.at)")
        XCTAssertEqual(y[x.firstIndex(of: 0)!], 0)
        XCTAssertEqual(y.last!, x.last!, "saturates to x")
    }
}
