import XCTest
@testable import TensorCore

/// DecodeScores replaces one `cblas_sgemm` per query row, head and layer of a decode step;
/// its scores must be OpenBLAS's to the last bit (a changed bit can change a sampled token).
final class DecodeScoresTests: XCTestCase {
    func testBitIdenticalToOpenBLAS() throws {
        try XCTSkipUnless(DecodeGEMM.verifiedBuild, "DecodeScores reproduces OpenBLAS 0.3.21's SkylakeX small kernel; this is \(BLAS.config)")
        var rng = RNG(seed: 11)
        var checked = 0
        // Head dims with and without a remainder of 16; cache lengths of every residue mod 4,
        // short (all single-key trees) to the 1,200 limit; rows of a wider cache (stride).
        for d in [32, 40, 64, 72, 80, 128] {
            for L in [1, 2, 3, 4, 5, 7, 16, 17, 63, 80, 81, 258, 1200] where L * d <= 1_000_000 {
                XCTAssertTrue(DecodeScores.sameSumsAsBLAS(positions: L, dim: d))
                let stride = 3 * d + 5
                let q = (0..<d).map { _ in rng.normal() }
                let keys = (0..<(L * stride)).map { _ in rng.normal() * 2 }
                let alpha = 1 / Float(d).squareRoot()
                var want = [Float](repeating: 0, count: L), got = [Float](repeating: .nan, count: L)
                q.withUnsafeBufferPointer { qp in keys.withUnsafeBufferPointer { kp in
                    want.withUnsafeMutableBufferPointer { sp in
                        BLAS.gemm(transA: false, transB: true, m: 1, n: L, k: d, alpha: alpha, a: qp.baseAddress!, lda: d,
                                  b: kp.baseAddress!, ldb: stride, beta: 0, c: sp.baseAddress!, ldc: L)
                    }
                    got.withUnsafeMutableBufferPointer { sp in
                        DecodeScores.forward(scores: sp.baseAddress!, q: qp.baseAddress!, keys: kp.baseAddress!,
                                             stride: stride, count: L, dim: d, alpha: alpha)
                    }
                } }
                let differ = zip(want, got).filter { $0.0.bitPattern != $0.1.bitPattern }.count
                XCTAssertEqual(differ, 0, "d \(d), L \(L): \(differ) of \(L) differ")
                checked += 1
            }
        }
        XCTAssertEqual(checked, 78)
    }

    /// Outside the small kernel's range OpenBLAS sums another way: those calls stay with it.
    func testOnlyTheSmallKernelsRange() {
        guard DecodeGEMM.verifiedBuild else {
            XCTAssertFalse(DecodeScores.sameSumsAsBLAS(positions: 16, dim: 64))
            return
        }
        XCTAssertTrue(DecodeScores.sameSumsAsBLAS(positions: 1200, dim: 64))
        XCTAssertFalse(DecodeScores.sameSumsAsBLAS(positions: 1201, dim: 64))  // M·N > 1200
        XCTAssertFalse(DecodeScores.sameSumsAsBLAS(positions: 80, dim: 16))    // K < 32
        XCTAssertFalse(DecodeScores.sameSumsAsBLAS(positions: 1000, dim: 1001)) // > 100³
    }
}
