import TestSupport
import XCTest
@testable import Models
@testable import TensorCore

/// Finite differences through a whole model: loss = masked cross-entropy of its logits;
/// a sample of every parameter tensor is perturbed (central differences at h and h/2,
/// Richardson-extrapolated so float32 round-off, not curvature, is the limit). Returns the
/// number of coordinates checked.
@discardableResult
func checkModelGradient(_ model: LanguageModel, ids: [Int32], targets: [Int32], mask: [Float],
                        positions: [Int32], segments: [Int32]?, batch: Int, seqLen: Int, samplesPerTensor: Int,
                        file: StaticString = #filePath, line: UInt = #line) -> Int {
    let normalizer = mask.reduce(0, +)
    func loss(_ tape: Tape) -> Tensor {
        let logits = model.forward(tape, inputs: ids, positions: positions, segments: segments, batch: batch, seqLen: seqLen)
        return tape.crossEntropy(logits, targets: targets, mask: mask, normalizer: normalizer)
    }
    let tape = Tape()
    model.parameters.zeroGrads()
    tape.backward(from: loss(tape))
    var checked = 0
    for e in model.parameters.entries {
        let t = model.parameters[e.name]
        for i in Swift.stride(from: 0, to: t.count, by: max(1, t.count / samplesPerTensor)) {
            let numeric = Float(richardsonDerivative(t.data + i, h: 1e-2) { Double(loss(Tape(recording: false)).item) })
            let analytic = t.grad[i]
            XCTAssertLessThanOrEqual(abs(numeric - analytic), 2e-2 * max(1e-2, abs(numeric), abs(analytic)),
                                     "\(e.name)[\(i)]: analytic \(analytic) numeric \(numeric)", file: file, line: line)
            checked += 1
        }
    }
    return checked
}
