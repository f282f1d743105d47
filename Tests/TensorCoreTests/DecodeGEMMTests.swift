import XCTest
@testable import TensorCore

/// DecodeGEMM replaces `cblas_sgemm` in decoding, where a changed last bit can change a sampled
/// token, so generation would no longer match a run without it. What these tests check:
/// - its products are bit-identical to OpenBLAS's on decode shapes (gpt2-mini's at 32 rows), odd
///   shapes and shapes just above 100³ multiply-adds, at one thread and split over two;
/// - `sameSumsAsBLAS` refuses the products OpenBLAS sends to its small-matrix kernel (at most
///   100³ multiply-adds per piece, after `BLAS.gemm` splits over threads), whose sums differ;
/// - the k blocks are those of OpenBLAS's level-3 driver (`q` = 320, the remainder halved),
///   since each block restarts the chain of fused multiply-adds.
/// Skipped on any other OpenBLAS build or core (`DecodeGEMM.verifiedBuild`): decoding then keeps
/// every product on OpenBLAS.
final class DecodeGEMMTests: XCTestCase {
    func testBitIdenticalToOpenBLAS() throws {
        try XCTSkipUnless(DecodeGEMM.verifiedBuild, "DecodeGEMM reproduces OpenBLAS 0.3.21's Cooperlake kernel; this is \(BLAS.config)")
        var rng = RNG(seed: 3)
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        var checked = 0
        for threads in [1, 2] {
            Parallel.threads = threads
            // Decode shapes (gpt2-mini, 32 rows), odd shapes, and shapes just above 100³.
            for (m, k, n) in [(32, 384, 1152), (32, 1536, 384), (33, 640, 96), (3, 384, 1152), (8, 384, 336), (2, 1536, 384),
                              (7, 700, 216)] {
                XCTAssertTrue(DecodeGEMM.sameSumsAsBLAS(m: m, n: n, k: k), "m \(m) k \(k) n \(n)")
                let a = (0..<(m * k)).map { _ in rng.normal() }, b = (0..<(k * n)).map { _ in rng.normal() }
                var want = [Float](repeating: 0, count: m * n), got = want
                a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in
                    want.withUnsafeMutableBufferPointer { cp in
                        BLAS.gemm(transA: false, transB: false, m: m, n: n, k: k, a: ap.baseAddress!, lda: k,
                                  b: bp.baseAddress!, ldb: n, beta: 0, c: cp.baseAddress!, ldc: n)
                    }
                    got.withUnsafeMutableBufferPointer { cp in
                        DecodeGEMM.forward(m: m, n: n, k: k, a: ap.baseAddress!, lda: k, b: bp.baseAddress!, ldb: n,
                                           c: cp.baseAddress!, ldc: n)
                    }
                } }
                let differ = zip(want, got).filter { $0.0.bitPattern != $0.1.bitPattern }.count
                XCTAssertEqual(differ, 0, "m \(m) k \(k) n \(n), \(threads) threads: \(differ) of \(m * n) differ")
                checked += 1
            }
        }
        XCTAssertEqual(checked, 14)
    }

    /// At most 100³ multiply-adds OpenBLAS takes its small-matrix kernel (other sums): not ours.
    func testSmallProductsStayWithOpenBLAS() throws {
        try XCTSkipUnless(DecodeGEMM.verifiedBuild, "not the OpenBLAS build DecodeGEMM reproduces")
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        Parallel.threads = 1
        XCTAssertFalse(DecodeGEMM.sameSumsAsBLAS(m: 8, n: 320, k: 384))   // 983,040
        XCTAssertTrue(DecodeGEMM.sameSumsAsBLAS(m: 8, n: 336, k: 384))    // 1,032,192
        XCTAssertFalse(DecodeGEMM.sameSumsAsBLAS(m: 1, n: 1152, k: 384))
        Parallel.threads = 8  // 32×1152×384 split in eight column pieces of 144: 1.77 M each
        XCTAssertTrue(DecodeGEMM.sameSumsAsBLAS(m: 32, n: 1152, k: 384))
        XCTAssertFalse(DecodeGEMM.sameSumsAsBLAS(m: 12, n: 1152, k: 384))  // 5.3 M, pieces of ~0.6 M
    }

    func testKBlocksFollowOpenBLASDriver() {
        XCTAssertEqual(DecodeGEMM.kBlocks(384), [0..<192, 192..<384])
        XCTAssertEqual(DecodeGEMM.kBlocks(1536), [0..<320, 320..<640, 640..<960, 960..<1248, 1248..<1536])
        XCTAssertEqual(DecodeGEMM.kBlocks(100), [0..<100])
    }
}
