import XCTest
@testable import TensorCore

/// RMSNorm's kernels split rows (forward, dx) and columns (dweight) over the threads; every
/// output must have the bits of the one-thread loop, so losses do not depend on the thread count.
final class RMSNormThreadsTests: XCTestCase {
    func testSameBitsAtEveryThreadCount() {
        let rows = 400, c = 200   // 80,000 elements: large enough to be split; c not a multiple of 8
        var g = SplitMix64(seed: 11)
        func values(_ n: Int) -> [Float] { (0..<n).map { _ in Float(Double(g.next() % 2001) / 1000 - 1) } }
        let x = values(rows * c), w = values(c), dout = values(rows * c), dx0 = values(rows * c), dw0 = values(c)

        func run(threads: Int) -> [[UInt32]] {
            Parallel.threads = threads
            defer { Parallel.threads = 1 }
            var out = [Float](repeating: 0, count: rows * c), rstd = [Float](repeating: 0, count: rows)
            var dx = dx0, dw = dw0
            RMSNormKernels.forward(out: &out, rstd: &rstd, x: x, weight: w, rows: rows, dim: c, eps: 1e-5)
            RMSNormKernels.backward(dx: &dx, dweight: &dw, dout: dout, x: x, weight: w, rstd: rstd, rows: rows, dim: c)
            return [out, rstd, dx, dw].map { $0.map(\.bitPattern) }
        }
        let one = run(threads: 1)
        for threads in [2, 3] {
            let many = run(threads: threads)
            for (name, (a, b)) in zip(["out", "rstd", "dx", "dweight"], zip(one, many)) {
                XCTAssertEqual(a, b, "\(name) differs at \(threads) threads")
            }
        }
    }
}
