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
        func loss(_ tape: Tape) -> Tensor {
            let logits = model.forward(tape, inputs: ids, batch: 2, seqLen: 4)
            return tape.crossEntropy(logits, targets: targets, mask: mask, normalizer: 6)
        }
        let tape = Tape()
        model.parameters.zeroGrads()
        tape.backward(from: loss(tape))
        var checked = 0
        for e in model.parameters.entries {
            let t = model.parameters[e.name]
            for i in Swift.stride(from: 0, to: t.count, by: max(1, t.count / 6)) {
                let old = t.data[i]
                // Central differences at h and h/2, combined by Richardson extrapolation:
                // O(h⁴) truncation error, so float32 round-off dominates, not curvature.
                func central(_ h: Float) -> Double {
                    t.data[i] = old + h; let lp = Double(loss(Tape(recording: false)).item)
                    t.data[i] = old - h; let lm = Double(loss(Tape(recording: false)).item)
                    t.data[i] = old
                    return (lp - lm) / Double(2 * h)
                }
                let numeric = Float((4 * central(5e-3) - central(1e-2)) / 3)
                let analytic = t.grad[i]
                XCTAssertLessThanOrEqual(abs(numeric - analytic), 2e-2 * max(1e-2, abs(numeric), abs(analytic)),
                                         "\(e.name)[\(i)]: analytic \(analytic) numeric \(numeric)")
                checked += 1
            }
        }
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
