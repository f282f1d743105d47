import XCTest
@testable import TensorCore

/// The per-shape GEMM table (`SFT_DIST_GEMM_PROFILE=1`) the README's profile comes from: each
/// call lands under its own (M, N, K, transA, transB), counted once.
final class GEMMProfileTests: XCTestCase {
    func testCallsAreCountedByShape() {
        let was = GEMMProfile.enabled
        GEMMProfile.enabled = true
        defer { GEMMProfile.enabled = was }
        let before = Dictionary(uniqueKeysWithValues: GEMMProfile.rows().map { ($0.0, $0.2.count) })
        let a = [Float](repeating: 1, count: 7 * 5), b = [Float](repeating: 2, count: 5 * 3)
        var c = [Float](repeating: 0, count: 7 * 3)
        for _ in 0..<2 {  // C[7,3] = A[7,5]·B[5,3]
            BLAS.gemm(transA: false, transB: false, m: 7, n: 3, k: 5, a: a, lda: 5, b: b, ldb: 3, beta: 0, c: &c, ldc: 3)
        }
        // C[7,3] = A[7,5]·(Bᵀ)ᵀ with B stored [3,5]
        BLAS.gemm(transA: false, transB: true, m: 7, n: 3, k: 5, a: a, lda: 5, b: b, ldb: 5, beta: 0, c: &c, ldc: 3)
        XCTAssertEqual(c[0], 10)
        var t = [Float](repeating: 0, count: 5 * 7)
        BLAS.transpose(rows: 7, cols: 5, a: a, lda: 5, b: &t, ldb: 7)  // a copy, listed with K = 0
        let after = Dictionary(uniqueKeysWithValues: GEMMProfile.rows().map { ($0.0, $0.2.count) })
        func added(_ s: GEMMProfile.Shape) -> Int { (after[s] ?? 0) - (before[s] ?? 0) }
        XCTAssertEqual(added(.init(m: 7, n: 3, k: 5, transA: false, transB: false)), 2)
        XCTAssertEqual(added(.init(m: 7, n: 3, k: 5, transA: false, transB: true)), 1)
        XCTAssertEqual(added(.init(m: 3, n: 7, k: 5, transA: false, transB: false)), 0)
        XCTAssertEqual(added(.init(m: 7, n: 5, k: 0, transA: true, transB: true)), 1)
    }
}
