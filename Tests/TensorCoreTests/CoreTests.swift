import XCTest
@testable import TensorCore

final class CoreTests: XCTestCase {
    func testParameterStoreViewsShareFlatBuffers() {
        let s = ParameterStore(layout: [("a", [2, 3]), ("b", [5])])
        s["b"].data[4] = 7
        XCTAssertEqual(s.values[s.entry("b")!.offset + 4], 7)
        s["a"].grad[1] = 3
        XCTAssertEqual(s.grads[1], 3)
        XCTAssertEqual(s.parameterCount, 11)
        XCTAssertEqual(s.entry("b")!.offset % 16, 0)
        s.zeroGrads()
        XCTAssertEqual(s["a"].grad[1], 0)
    }

    func testChecksumSeesOneBit() {
        let s = ParameterStore(layout: [("a", [100])])
        let c0 = s.checksum()
        s.values[57] = Float(bitPattern: 1)
        XCTAssertNotEqual(c0, s.checksum())
    }

    func testRNGIsDeterministicAndRestorable() {
        var a = RNG(seed: 5), b = RNG(seed: 5)
        XCTAssertEqual((0..<10).map { _ in a.next() }, (0..<10).map { _ in b.next() })
        let saved = a.words
        let x = a.next()
        var restored = RNG(words: saved)
        XCTAssertEqual(restored.next(), x)
        var s1 = RNG(seed: 5, stream: 1), s2 = RNG(seed: 5, stream: 2)
        XCTAssertNotEqual(s1.next(), s2.next())
        var c = RNG(seed: 9)
        let mean = (0..<20000).map { _ in Double(c.normal()) }.reduce(0, +) / 20000
        XCTAssertEqual(mean, 0, accuracy: 0.03)
        for _ in 0..<1000 { let k = c.below(7); XCTAssert((0..<7).contains(k)) }
    }

    func testTapeWithoutGradRecordsNothing() {
        let w = Tensor(shape: [2, 2], values: [1, 2, 3, 4], requiresGrad: true)
        let x = Tensor(shape: [1, 2], values: [1, 1])
        let tape = Tape()
        _ = tape.withoutGrad { tape.linear(x, weight: w, layout: .outIn) }
        XCTAssertEqual(tape.count, 0)
        _ = tape.linear(x, weight: w, layout: .outIn)
        XCTAssertEqual(tape.count, 1)
    }
}
