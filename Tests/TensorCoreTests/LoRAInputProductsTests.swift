import XCTest
@testable import TensorCore

/// An adapter's input-side products (Ops/LoRAInputProducts.swift) against sums in Double: x·Aᵀ
/// cut into small-kernel pieces, dA by `LoRAInputGradient` or one GEMM; strided operands, a
/// last piece shorter than the others, dA with beta 0 and 1, widths that are and are not
/// multiples of 4, 1 and 2 threads — and the pieces within OpenBLAS's small-matrix rule.
final class LoRAInputProductsTests: XCTestCase {
    func testPiecesEqualTheProducts() {
        var rng = RNG(seed: 43)
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        for (threads, n, ic, w) in [(1, 1100, 800, 8), (2, 400, 1300, 24), (1, 9, 40, 8), (2, 70, 35, 12), (2, 250, 300, 6)] {
            Parallel.threads = threads
            let ldx = ic + 5, ldu = w + 3
            let x = (0..<(n * ldx)).map { _ in rng.normal() }, a = (0..<(w * ic)).map { _ in rng.normal() }
            let du = (0..<(n * ldu)).map { _ in rng.normal() }, da0 = (0..<(w * ic)).map { _ in rng.normal() }
            if n > 100 {  // the pieces are what is under test
                XCTAssertLessThan(LoRAInputProducts.rowsPerCall(width: w, inFeatures: ic, split: true)!, n)
            }
            for (split, kernel) in [(true, false), (false, false), (false, true)] {
                var u = [Float](repeating: .nan, count: n * ldu), da = da0, daAdded = da0
                x.withUnsafeBufferPointer { xp in
                    LoRAInputProducts.project(x: xp.baseAddress!, ldx: ldx, a: a, u: &u, ldu: ldu, n: n, inFeatures: ic,
                                              width: w, split: split)
                    LoRAInputProducts.inputSideGradient(du: du, lddu: ldu, x: xp.baseAddress!, ldx: ldx, da: &da, beta: 0,
                                                        n: n, inFeatures: ic, width: w, kernel: kernel)
                    LoRAInputProducts.inputSideGradient(du: du, lddu: ldu, x: xp.baseAddress!, ldx: ldx, da: &daAdded, beta: 1,
                                                        n: n, inFeatures: ic, width: w, kernel: kernel)
                }
                let what = "threads \(threads), n \(n), IC \(ic), width \(w), split \(split), kernel \(kernel)"
                for i in 0..<n {
                    for j in 0..<w {
                        var want = 0.0
                        for c in 0..<ic { want += Double(x[i * ldx + c]) * Double(a[j * ic + c]) }
                        XCTAssertEqual(Double(u[i * ldu + j]), want, accuracy: 1e-4 * max(1, abs(want)), "u[\(i), \(j)], \(what)")
                    }
                    XCTAssertTrue(u[(i * ldu + w)..<(i * ldu + ldu)].allSatisfy(\.isNaN), "u's padding written, \(what)")
                }
                for j in 0..<w {
                    for c in 0..<ic {
                        var want = 0.0
                        for i in 0..<n { want += Double(du[i * ldu + j]) * Double(x[i * ldx + c]) }
                        let tol = 1e-4 * max(1, abs(want))
                        XCTAssertEqual(Double(da[j * ic + c]), want, accuracy: tol, "dA[\(j), \(c)], \(what)")
                        XCTAssertEqual(Double(daAdded[j * ic + c]), want + Double(da0[j * ic + c]), accuracy: tol,
                                       "dA + dA0 [\(j), \(c)], \(what)")
                    }
                }
            }
        }
    }

    /// `LoRAInputGradient` gives the same bits at 1, 2 and 3 threads (fixed 16-column blocks,
    /// rows summed in order); the forward's pieces are rows, so they never depended on it.
    func testGradientGivesTheSameBitsAtAnyThreadCount() {
        var rng = RNG(seed: 7)
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        let (n, ic, w) = (1024, 1536, 8)
        let x = (0..<(n * ic)).map { _ in rng.normal() }, du = (0..<(n * w)).map { _ in rng.normal() }
        var results: [[Float]] = []
        for threads in [1, 2, 3] {
            Parallel.threads = threads
            var da = [Float](repeating: 0, count: w * ic)
            LoRAInputProducts.inputSideGradient(du: du, lddu: w, x: x, ldx: ic, da: &da, beta: 0, n: n, inFeatures: ic, width: w)
            results.append(da)
        }
        for (i, r) in results.enumerated().dropFirst() {
            XCTAssertTrue(zip(r, results[0]).allSatisfy { $0.bitPattern == $1.bitPattern }, "dA at \(i + 1) threads differs from 1 thread's")
        }
    }

    /// Every piece within the small kernel's rule (≤ 100³ multiply-adds; x·Aᵀ also ≤ 1200
    /// outputs and K ≥ 32), else it takes the packing path the pieces are there to avoid.
    func testPiecesWithinTheSmallKernelRule() {
        for (ic, w) in [(576, 8), (576, 16), (576, 24), (1536, 8), (4864, 8), (896, 16)] {
            let rows = LoRAInputProducts.rowsPerCall(width: w, inFeatures: ic, split: true)!
            XCTAssertLessThanOrEqual(rows * w, 1200, "IC \(ic), width \(w)")
            XCTAssertLessThanOrEqual(rows * w * ic, 1_000_000, "IC \(ic), width \(w)")
            XCTAssertTrue((rows + 1) * w * ic > 1_000_000 || (rows + 1) * w > 1200,
                          "IC \(ic), width \(w): \(rows) rows, one more would still qualify")
        }
        XCTAssertNil(LoRAInputProducts.rowsPerCall(width: 8, inFeatures: 16, split: true), "K < 32: never the small TN kernel")
        XCTAssertNil(LoRAInputProducts.rowsPerCall(width: 8, inFeatures: 576, split: false))
    }
}
