import XCTest
@testable import TensorCore

/// `Vec.firstIndex(of:in:count:)` against the plain left-to-right walk: matches in the first
/// lane, the middle and last lane of a block, repeated within and across blocks, in the scalar
/// tail, none at all, NaNs around, for lengths on and off a multiple of 8.
final class VectorSearchTests: XCTestCase {
    func testFirstIndexMatchesThePlainWalk() {
        var rng = SplitMix64(seed: 3)
        for n in [1, 7, 8, 9, 16, 29, 64, 1003] {
            for trial in 0..<40 {
                var x = (0..<n).map { _ in Float(rng.next() % 50) }
                if trial % 5 == 0, n > 0 { x[Int(rng.next() % UInt64(n))] = .nan }
                let value: Float = trial % 7 == 0 ? 77 : Float(rng.next() % 50)   // 77: never present
                if trial % 3 == 0, n > 0 { x[Int(rng.next() % UInt64(n))] = value }
                let expected = x.firstIndex(of: value)
                let got = x.withUnsafeBufferPointer { Vec.firstIndex(of: value, in: $0.baseAddress!, count: n) }
                XCTAssertEqual(got, expected, "n \(n), trial \(trial), value \(value)")
            }
        }
    }
}
