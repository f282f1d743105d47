import XCTest
@testable import TensorCore

/// LayerNorm's backward splits rows (dx) and, at several threads, columns (dweight, dbias)
/// over the threads; every output must have the bits of the one-thread loop, so GPT-2's norm
/// gradients do not depend on the thread count.
final class LayerNormThreadsTests: XCTestCase {
    func testBackwardHasTheSameBitsAtEveryThreadCount() {
        let rows = 300, c = 203   // 60,900 elements: split over threads; c not a multiple of 8
        var g = SplitMix64(seed: 17)
        func values(_ n: Int) -> [Float] { (0..<n).map { _ in Float(Double(g.next() % 2001) / 1000 - 1) } }
        let x = values(rows * c), w = values(c), b = values(c), dout = values(rows * c)
        let dx0 = values(rows * c), dw0 = values(c), db0 = values(c)
        var out = [Float](repeating: 0, count: rows * c)
        var mean = [Float](repeating: 0, count: rows), rstd = [Float](repeating: 0, count: rows)
        LayerNormKernels.forward(out: &out, mean: &mean, rstd: &rstd, x: x, weight: w, bias: b, rows: rows, dim: c, eps: 1e-5)

        func run(threads: Int) -> [[UInt32]] {
            Parallel.threads = threads
            defer { Parallel.threads = 1 }
            var dx = dx0, dw = dw0, db = db0
            LayerNormKernels.backward(dx: &dx, dweight: &dw, dbias: &db, dout: dout, x: x, weight: w,
                                      mean: mean, rstd: rstd, rows: rows, dim: c)
            return [dx, dw, db].map { $0.map(\.bitPattern) }
        }
        let one = run(threads: 1)
        for threads in [2, 3] {
            let many = run(threads: threads)
            for (name, (a, b)) in zip(["dx", "dweight", "dbias"], zip(one, many)) {
                XCTAssertEqual(a, b, "\(name) differs at \(threads) threads")
            }
        }
    }
}
