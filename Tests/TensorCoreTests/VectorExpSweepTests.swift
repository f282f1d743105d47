import Foundation
@testable import TensorCore
import XCTest

/// `Vec.exp` (the loss's softmax, attention) and `Vec.expFused` (SwiGLU's σ, GELU's σ(2z)) against
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

    /// The fused-multiply-add variant: < 1.5e-7 (1.16e-7 seen, against `exp`'s 2e-7), the same range and flush.
    func testFusedVariantMatchesFoundationOverTheWholeRange() {
        var worst = 0.0, worstAt: Float = 0
        for i in stride(from: 0, to: 175 * 1024 + 8, by: 8) {
            let v = F8((0..<8).map { Float(-87.0 + Double(i + $0) / 1024) })
            let e = Vec.expFused(v)
            for j in 0..<8 {
                let reference = Foundation.exp(Double(v[j])), error = abs(Double(e[j]) - reference) / reference
                if !(error <= worst) { worst = error; worstAt = v[j] }
            }
        }
        XCTAssertLessThan(worst, 1.5e-7, "worst relative error at x = \(worstAt)")
        XCTAssertEqual(Vec.expFused(F8([-90, -88, -87.5, -200, -.infinity, -1e30, -87.31, -100])), F8(repeating: 0))
    }
}
