import XCTest
import TensorCore
@testable import Training

/// `ObjectiveRequirements.writesWholeRows` lets the fused head hand an objective an
/// uninitialised dL/dlogits buffer (`Tape.fusedHead(lossWritesWholeRows:)`). An objective
/// that declares it must give the same loss and the same gradient bits whatever the buffer
/// held before — masked rows included — as it gives on a zeroed buffer.
final class ObjectiveWholeRowsTests: XCTestCase {
    /// Every registered objective at its defaults, plus nll with label smoothing.
    func objectives() throws -> [(String, Objective)] {
        try ObjectiveRegistry.names.map { ($0, try ObjectiveRegistry.make(name: $0, args: [:])) }
            + [("nll label_smoothing=0.1", try ObjectiveRegistry.make(name: "nll", args: ["label_smoothing": "0.1"]))]
    }

    func batch(for objective: Objective) -> ObjectiveTestBatch {
        let r = objective.requirements
        if r.pairs { return .randomPairs(vocab: 37) }
        if r.rollouts || r.behaviourLogProbs { return .randomRollouts(vocab: 37) }
        return .random(vocab: 37)   // 37: a vector tail in every row
    }

    func testDeclaringObjectivesOverwriteWhateverTheBufferHeld() throws {
        let declaring = try objectives().filter { $0.1.requirements.writesWholeRows }
        XCTAssertTrue(declaring.contains { $0.0 == "nll" }, "nll writes whole rows (the default recipe's fused head relies on it)")
        for (name, objective) in declaring {
            let b = batch(for: objective)
            let context = b.prepare(objective, context: b.context())
            func run(prefill: Float) -> (loss: Double, gradient: [Float]) {
                var g = [Float](repeating: prefill, count: b.rows * b.vocab)
                let loss = g.withUnsafeMutableBufferPointer {
                    objective.lossAndGradient(b.input(0..<b.rows, context), dlogits: $0.baseAddress!).loss
                }
                return (loss, g)
            }
            let zeroed = run(prefill: 0)
            XCTAssertTrue(zeroed.gradient.contains { $0 != 0 }, "\(name): a gradient to compare")
            for prefill in [Float.nan, 3.5e30, -1] {
                let dirty = run(prefill: prefill)
                XCTAssertEqual(dirty.loss.bitPattern, zeroed.loss.bitPattern, "\(name), buffer held \(prefill): loss")
                let differing = zip(dirty.gradient, zeroed.gradient).enumerated().filter { $0.1.0 != $0.1.1 }
                XCTAssertTrue(differing.isEmpty, "\(name), buffer held \(prefill): \(differing.count) gradient entries differ, "
                              + "first at row \((differing.first?.offset ?? 0) / b.vocab)")
            }
        }
    }
}
