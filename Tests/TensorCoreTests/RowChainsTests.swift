import XCTest
@testable import TensorCore

/// RMSNorm with its row sums four rows at a time (`RowChains`): the bits of the plain
/// row-by-row loop — forward output and rstd, backward dx — for row counts with and without a
/// remainder of rows, column counts on and off a multiple of 8, at 1–3 threads.
final class RowChainsTests: XCTestCase {
    func testRMSNormMatchesThePlainRowLoop() {
        var rng = SplitMix64(seed: 21)
        func values(_ n: Int) -> [Float] { (0..<n).map { _ in Float(Double(rng.next() % 20001) / 10000 - 1) } }
        for (rows, c) in [(7, 576), (13, 37), (4, 8), (130, 200)] {
            let x = values(rows * c), w = values(c), dout = values(rows * c), dx0 = values(rows * c)
            let eps: Float = 1e-5
            // The plain loops, one row at a time.
            var out = [Float](repeating: 0, count: rows * c), rstd = [Float](repeating: 0, count: rows), dx = dx0
            for r in 0..<rows {
                var ss: Float = 0
                for j in 0..<c { ss += x[r * c + j] * x[r * c + j] }
                let s = 1 / (ss / Float(c) + eps).squareRoot()
                for j in 0..<c { out[r * c + j] = x[r * c + j] * s * w[j] }
                rstd[r] = s
            }
            for r in 0..<rows {
                let s = rstd[r]
                var dot: Float = 0
                for j in 0..<c { dot += w[j] * dout[r * c + j] * x[r * c + j] * s }
                let m = dot / Float(c)
                for j in 0..<c { dx[r * c + j] += (w[j] * dout[r * c + j] - x[r * c + j] * s * m) * s }
            }
            for threads in [1, 2, 3] {
                Parallel.threads = threads
                defer { Parallel.threads = 1 }
                var o = [Float](repeating: 0, count: rows * c), rs = [Float](repeating: 0, count: rows), d = dx0
                RMSNormKernels.forward(out: &o, rstd: &rs, x: x, weight: w, rows: rows, dim: c, eps: eps)
                RMSNormKernels.backward(dx: &d, dweight: nil, dout: dout, x: x, weight: w, rstd: rs, rows: rows, dim: c)
                let what = "\(rows)×\(c), \(threads) thread(s)"
                XCTAssertEqual(o.map(\.bitPattern), out.map(\.bitPattern), "out, \(what)")
                XCTAssertEqual(rs.map(\.bitPattern), rstd.map(\.bitPattern), "rstd, \(what)")
                XCTAssertEqual(d.map(\.bitPattern), dx.map(\.bitPattern), "dx, \(what)")
            }
        }
    }
}
