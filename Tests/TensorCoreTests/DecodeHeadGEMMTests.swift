import XCTest
@testable import TensorCore

/// DecodeHeadGEMM must give exactly OpenBLAS's A·Bᵀ (it replaces cblas_sgemm for the tied LM
/// head in decoding, where a changed last bit can change a sampled token), at one thread and
/// split over two.
final class DecodeHeadGEMMTests: XCTestCase {
    func testBitIdenticalToOpenBLAS() throws {
        try XCTSkipUnless(DecodeGEMM.verifiedBuild, "DecodeHeadGEMM reproduces OpenBLAS 0.3.21's Cooperlake kernel; this is \(BLAS.config)")
        var rng = RNG(seed: 5)
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        var checked = 0
        for threads in [1, 2] {
            Parallel.threads = threads
            // The gpt2-mini head (32 rows × 8192), row counts that are not whole vectors or
            // groups of 32, and inner dimensions with one, two and several k blocks.
            for (m, k, n) in [(32, 384, 8192), (33, 384, 1000), (5, 640, 700), (20, 100, 1100), (45, 1536, 301), (1, 384, 8192)] {
                XCTAssertTrue(DecodeGEMM.sameSumsAsBLAS(m: m, n: n, k: k), "m \(m) k \(k) n \(n)")
                let a = (0..<(m * k)).map { _ in rng.normal() }, b = (0..<(n * k)).map { _ in rng.normal() }
                var want = [Float](repeating: 0, count: m * n), got = [Float](repeating: .nan, count: m * n)
                var scratch = [Float](repeating: .nan, count: DecodeHeadGEMM.scratchFloats(m: m, k: k))
                a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in
                    want.withUnsafeMutableBufferPointer { cp in
                        BLAS.gemm(transA: false, transB: true, m: m, n: n, k: k, a: ap.baseAddress!, lda: k,
                                  b: bp.baseAddress!, ldb: k, beta: 0, c: cp.baseAddress!, ldc: n)
                    }
                    got.withUnsafeMutableBufferPointer { cp in scratch.withUnsafeMutableBufferPointer { sp in
                        DecodeHeadGEMM.forward(m: m, n: n, k: k, a: ap.baseAddress!, lda: k, b: bp.baseAddress!, ldb: k,
                                               c: cp.baseAddress!, ldc: n, scratch: sp.baseAddress!)
                    } }
                } }
                let differ = zip(want, got).filter { $0.0.bitPattern != $0.1.bitPattern }.count
                XCTAssertEqual(differ, 0, "m \(m) k \(k) n \(n), \(threads) threads: \(differ) of \(m * n) differ")
                checked += 1
            }
        }
        XCTAssertEqual(checked, 12)
    }
}
