import XCTest
@testable import Training

/// Padded and packed batches: inputs, shifted targets, loss masks, positions and segments.
final class BatchingTests: XCTestCase {
    private func example(_ ids: [Int32], _ mask: [UInt8], _ name: String) -> Example {
        Example(ids: ids, lossMask: mask, promptLength: 1, answer: nil, source: name)
    }

    func testPaddedBatch() {
        let examples = [example([1, 2, 3, 4], [0, 0, 1, 1], "a"), example([5, 6], [0, 1], "b"),
                        example([7, 8, 9], [0, 1, 1], "c")]
        let b = Batching.padded(examples, indices: [1, 0], padId: 99)
        XCTAssertEqual(b.batch, 2)
        XCTAssertEqual(b.seqLen, 3)
        XCTAssertEqual(b.inputs, [5, 99, 99, 1, 2, 3])
        XCTAssertEqual(b.targets, [6, -1, -1, 2, 3, 4])
        XCTAssertEqual(b.mask, [1, 0, 0, 0, 1, 1])
        XCTAssertEqual(b.positions, [0, 0, 0, 0, 1, 2])
        XCTAssertEqual(b.segments, [0, -1, -1, 0, 0, 0])
        XCTAssertEqual(b.exampleOfRow, [1, 0])
        XCTAssertEqual(b.lossTokens, 3)
        XCTAssertEqual(b.lossTokens, [1, 0].map { lossTokenCount(examples[$0]) }.reduce(0, +))
    }

    func testPackedBatch() {
        let examples = [example([1, 2, 3, 4], [0, 0, 1, 1], "a"),  // 3 positions
                        example([5, 6], [0, 1], "b"),              // 1
                        example([7, 8, 9], [0, 1, 1], "c"),        // 2
                        example([10, 11, 12, 13, 14], [0, 1, 1, 1, 1], "d")]  // 4
        let b = Batching.packed(examples, indices: [0, 1, 2, 3], seqLen: 4, padId: 99)
        XCTAssertEqual(b.batch, 3)
        XCTAssertEqual(b.seqLen, 4)
        // Row 0: a + b; row 1: c (d does not fit after it); row 2: d.
        XCTAssertEqual(b.inputs, [1, 2, 3, 5, 7, 8, 99, 99, 10, 11, 12, 13])
        XCTAssertEqual(b.targets, [2, 3, 4, 6, 8, 9, -1, -1, 11, 12, 13, 14])
        XCTAssertEqual(b.mask, [0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1])
        XCTAssertEqual(b.positions, [0, 1, 2, 0, 0, 1, 0, 0, 0, 1, 2, 3])
        XCTAssertEqual(b.segments, [0, 0, 0, 1, 0, 0, -1, -1, 0, 0, 0, 0])
        XCTAssertEqual(b.rowExamples, [[0, 1], [2], [3]])
        XCTAssertEqual(b.exampleOfRow, [0, 2, 3])
        XCTAssertEqual(b.lossTokens, examples.map(lossTokenCount).reduce(0, +))
        XCTAssertEqual(b.lossTokens, 9)
    }
}
