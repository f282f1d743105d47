import XCTest
@testable import TensorCore

/// `OptimizerKernels.adamw(clearing:)`: the AdamW update of the plain one-element-at-a-time
/// formula, bit for bit, with the gradient left at zero when `clearing` is set (and untouched
/// when it is not) — including the scalar tail after the 8-wide loop and at several threads.
final class OptimizerClearingTests: XCTestCase {
    func testClearingUpdateMatchesThePlainLoopAndZeroesTheGradient() {
        let count = 40_003   // split over threads (minChunk 16384), and a tail of 3 after the 8-wide loop
        var rng = SplitMix64(seed: 5)
        func values(_ scale: Double) -> [Float] { (0..<count).map { _ in Float((Double(rng.next() % 20001) / 10000 - 1) * scale) } }
        let p0 = values(1), g0 = values(0.1), m0 = values(0.01), v0 = values(0.001).map { abs($0) }
        let (lr, b1, b2, eps, wd, scale): (Float, Float, Float, Float, Float, Float) = (1e-3, 0.9, 0.95, 1e-8, 0.1, 0.5)
        let c1: Float = 1 - 0.9 * 0.9, c2: Float = 1 - 0.95 * 0.95

        // The reference: the formula one element at a time — as the 8-wide loop evaluates it
        // (bias corrections as reciprocals, (1−β2)·(g·g)) up to the last multiple of 8, as the
        // scalar tail does (divisions, ((1−β2)·g)·g) after it.
        var p = p0, m = m0, v = v0
        for i in 0..<count {
            let gi = g0[i] * scale
            m[i] = b1 * m[i] + (1 - b1) * gi
            let vectorLoop = i < count / 8 * 8
            v[i] = b2 * v[i] + (vectorLoop ? (1 - b2) * (gi * gi) : (1 - b2) * gi * gi)
            let step = vectorLoop ? (m[i] * (1 / c1)) / ((v[i] * (1 / c2)).squareRoot() + eps)
                                  : (m[i] / c1) / ((v[i] / c2).squareRoot() + eps)
            p[i] = p[i] - lr * (step + wd * p[i])
        }

        for threads in [1, 2, 3] {
            for clearing in [false, true] {
                Parallel.threads = threads
                defer { Parallel.threads = 1 }
                var pk = p0, gk = g0, mk = m0, vk = v0
                gk.withUnsafeMutableBufferPointer { g in
                    OptimizerKernels.adamw(p: &pk, g: g.baseAddress!, m: &mk, v: &vk, count: count, gradScale: scale, lr: lr,
                                           beta1: b1, beta2: b2, c1: c1, c2: c2, eps: eps, wd: wd, clearing: clearing)
                }
                let what = "\(threads) thread(s), clearing \(clearing)"
                XCTAssertNil(firstDifference(pk, p), "parameters, \(what)")
                XCTAssertNil(firstDifference(mk, m), "first moments, \(what)")
                XCTAssertNil(firstDifference(vk, v), "second moments, \(what)")
                if clearing {
                    XCTAssertNil(gk.firstIndex { $0.bitPattern != 0 }, "gradient left at +0, \(what)")
                } else {
                    XCTAssertNil(firstDifference(gk, g0), "gradient untouched, \(what)")
                }
            }
        }
    }

    /// The first index whose bits differ, nil when all agree.
    func firstDifference(_ a: [Float], _ b: [Float]) -> Int? {
        XCTAssertEqual(a.count, b.count)
        return a.indices.first { a[$0].bitPattern != b[$0].bitPattern }
    }
}
