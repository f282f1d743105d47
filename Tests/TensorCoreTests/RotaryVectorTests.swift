import XCTest
@testable import TensorCore

/// `RotaryKernels.rotate` 8 pairs at a time and rows over threads, and the shared tables:
/// the bits of the plain pair-by-pair loop at every thread count, for head dimensions with and
/// without a scalar tail, both directions, overwrite and accumulate, packed rows (ld > heads·d).
final class RotaryVectorTests: XCTestCase {
    func testRotateMatchesThePlainLoopAtEveryThreadCount() {
        var rng = SplitMix64(seed: 9)
        func values(_ n: Int) -> [Float] { (0..<n).map { _ in Float(Double(rng.next() % 20001) / 10000 - 1) } }
        for (d, heads, extra) in [(64, 3, 64), (20, 2, 0), (6, 4, 6)] {   // half 32, 10 (8 + tail 2), 3 (tail only)
            let rows = 300, ld = heads * d + extra, half = d / 2
            let positions = (0..<rows).map { Int32(($0 * 7) % 97) }
            let (cosT, sinT) = RotaryKernels.tables(maxPosition: 96, headDim: d, theta: 10_000)
            let x = values(rows * ld), base = values(rows * ld)
            for direction: Float in [1, -1] {
                for accumulate in [false, true] {
                    var expected = base
                    for n in 0..<rows {
                        let cp = Int(positions[n]) * half
                        for h in 0..<heads {
                            for i in 0..<half {
                                let c = cosT[cp + i], s = sinT[cp + i] * direction
                                let a = x[n * ld + h * d + i], b = x[n * ld + h * d + i + half]
                                let na = a * c - b * s, nb = b * c + a * s
                                if accumulate {
                                    expected[n * ld + h * d + i] += na; expected[n * ld + h * d + i + half] += nb
                                } else {
                                    expected[n * ld + h * d + i] = na; expected[n * ld + h * d + i + half] = nb
                                }
                            }
                        }
                    }
                    for threads in [1, 2, 3] {
                        Parallel.threads = threads
                        defer { Parallel.threads = 1 }
                        var out = base
                        RotaryKernels.rotate(out: &out, x: x, positions: positions, heads: heads, headDim: d,
                                             cos: cosT, sin: sinT, direction: direction, accumulate: accumulate, ld: ld)
                        XCTAssertEqual(out.map(\.bitPattern), expected.map(\.bitPattern),
                                       "d \(d), direction \(direction), accumulate \(accumulate), \(threads) thread(s)")
                    }
                }
            }
        }
    }

    /// A table grown for a longer sequence serves a shorter one with the entries a fresh table
    /// would have; other head dimensions and θ get their own.
    func testSharedTablesEqualFreshOnes() {
        let tables = RotaryTables()
        for (maxPosition, d, theta) in [(5, 8, Float(10_000)), (40, 8, 10_000), (3, 8, 10_000), (7, 12, 500), (7, 8, 500)] {
            let (c, s) = tables.tables(maxPosition: maxPosition, headDim: d, theta: theta)
            let (fc, fs) = RotaryKernels.tables(maxPosition: maxPosition, headDim: d, theta: theta)
            XCTAssertGreaterThanOrEqual(c.count, fc.count)
            XCTAssertEqual(Array(c[..<fc.count]).map(\.bitPattern), fc.map(\.bitPattern), "cos, \(maxPosition) \(d) \(theta)")
            XCTAssertEqual(Array(s[..<fs.count]).map(\.bitPattern), fs.map(\.bitPattern), "sin, \(maxPosition) \(d) \(theta)")
        }
    }

    /// Finite differences through a head dimension with an 8-wide block and a tail.
    func testRotaryGradientWithVectorBlocks() {
        var rng = RNG(seed: 4)
        let x = randomTensor([4, 2 * 20], &rng)
        checkGradients([x], eps: 1e-2) { $0.rotary(x, positions: [0, 9, 3, 30], heads: 2, headDim: 20, theta: 10_000) }
    }
}
