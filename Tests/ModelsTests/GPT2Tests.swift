import XCTest
@testable import Models
@testable import TensorCore

final class GPT2Tests: XCTestCase {
    let config = GPT2Config(vocabSize: 11, contextLength: 8, embedDim: 8, layers: 2, heads: 2)

    /// Finite differences through the whole model: loss = masked CE of the logits.
    func testWholeModelGradient() {
        let model = GPT2(config: config, seed: 3)
        // Larger init so gradients are well above float32 differencing noise.
        for i in 0..<model.parameters.count { model.parameters.values[i] *= 5 }
        let ids: [Int32] = [1, 5, 2, 9, 3, 3, 0, 10]
        let targets: [Int32] = [5, 2, 9, 3, 3, 0, 10, 4]
        let mask: [Float] = [0, 1, 1, 1, 0, 1, 1, 1]
        var positions = [Int32](repeating: 0, count: 8)
        for i in 0..<8 { positions[i] = Int32(i % 4) }
        let checked = checkModelGradient(model, ids: ids, targets: targets, mask: mask, positions: positions,
                                         segments: nil, batch: 2, seqLen: 4, samplesPerTensor: 6)
        XCTAssertGreaterThan(checked, 100)
    }

    func testPackedSegmentsEqualSeparateRows() {
        // Two documents packed into one row must give the same logits as each alone.
        let model = GPT2(config: config, seed: 1)
        let a: [Int32] = [1, 2, 3], b: [Int32] = [4, 5, 6, 7, 8]
        let packed = model.forward(Tape(recording: false), inputs: a + b, positions: [0, 1, 2, 0, 1, 2, 3, 4],
                                   segments: [0, 0, 0, 1, 1, 1, 1, 1], batch: 1, seqLen: 8).values
        let alone = model.forward(Tape(recording: false), inputs: b, batch: 1, seqLen: 5).values
        for i in 0..<alone.count { XCTAssertEqual(packed[3 * 11 + i], alone[i], accuracy: 1e-5) }
    }

    func testConfigValidation() {
        var c = config
        c.heads = 3
        XCTAssertThrowsError(try c.validate())
        XCTAssertNoThrow(try config.validate())
    }
}
