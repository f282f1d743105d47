import Foundation
import TensorCore
import XCTest

/// `Vec.exp` (the loss's softmax, attention, SwiGLU's sigmoid, GELU's tanh) against
/// Foundation's double-precision exp over its whole range in steps of 1/1024: the documented
/// |relative error| < 2e-7 on [−87, 88], 0 below −87.3. Through `Vec.expShifted` (shift 0,
/// a multiple of 8 elements: every one through `Vec.exp`), which TensorCore compiles: `Vec.exp`
/// is `@_transparent`, so a copy inlined into this module could lag behind an incremental
/// rebuild of TensorCore.
final class VectorExpSweepTests: XCTestCase {
    func exps(_ x: [Float]) -> [Float] {
        precondition(x.count % 8 == 0)
        var e = x
        _ = e.withUnsafeMutableBufferPointer { Vec.expShifted($0.baseAddress!, shift: 0, count: $0.count) }
        return e
    }

    func testMatchesFoundationOverTheWholeRange() {
        let x = (0..<(175 * 1024 + 8)).map { Float(-87.0 + Double($0) / 1024) }   // −87 … 88.0078
        let e = exps(x)
        var worst = 0.0, worstAt: Float = 0
        for (v, got) in zip(x, e) {
            let reference = Foundation.exp(Double(v))
            let error = abs(Double(got) - reference) / reference
            if !(error <= worst) { worst = error; worstAt = v }
        }
        XCTAssertLessThan(worst, 2e-7, "worst relative error at x = \(worstAt)")
        XCTAssertEqual(exps([-90, -88, -87.5, -200, -.infinity, -1e30, -87.31, -100]), [Float](repeating: 0, count: 8),
                       "below −87.3 flushes to 0")
    }
}
