import Foundation
import XCTest
@testable import Training

/// On a generation's first step (`StepContext.onPolicy`) every objective with a sampler's
/// log-probs divides by π_θ itself, detached, as TRL's on-policy old log-probs: its loss and
/// gradient equal those of the same batch whose stored behaviour log-probs are the batch's own
/// (ratio 1), whatever the sampler stored — here log-probs that put the ratio near 1.66. The
/// finite-difference rows check the gradient; this checks π_old.
extension ObjectiveGradientTests {
    func testAFirstStepDividesByTheForwardItself() throws {
        let names = ["rloo", "gmpo", "grpo", "chord", "uft", "prefix-rft", "relift"]
        let configurations = Self.configurations.filter { names.contains($0.0) }
        XCTAssertEqual(Set(configurations.map(\.0)), Set(names))
        for (name, args) in configurations {
            let label = "\(name) \(args)"
            let batch = try self.batch(name, args)
            XCTAssertFalse(batch.behaviour.isEmpty, label)
            func run(onPolicy: Bool, behaviour: [Float]) throws -> (Double, [Float]) {
                batch.behaviour = behaviour
                let objective = try makeObjective(name, args)
                var context = batch.context(step: 0, totalSteps: 4)
                context.onPolicy = onPolicy
                context = batch.prepare(objective, context: context)
                var grad = [Float](repeating: 0, count: batch.rows * batch.vocab)
                let loss = grad.withUnsafeMutableBufferPointer { objective.lossAndGradient(batch.input(0..<batch.rows, context), dlogits: $0.baseAddress!).loss }
                return (loss, grad)
            }
            let stored = batch.behaviour
            let (onLoss, onGrad) = try run(onPolicy: true, behaviour: stored)
            let (ownLoss, ownGrad) = try run(onPolicy: false, behaviour: batch.ownLogProbs)
            let (offLoss, _) = try run(onPolicy: false, behaviour: stored)
            XCTAssertEqual(onLoss, ownLoss, accuracy: 1e-6 * max(1, abs(ownLoss)), "\(label): loss")
            XCTAssertNotEqual(offLoss, ownLoss, accuracy: 1e-4, "\(label): the stored log-probs do not move the loss")
            let scale = ownGrad.map { abs($0) }.max() ?? 0
            XCTAssertGreaterThan(scale, 1e-4, label)
            for (a, b) in zip(onGrad, ownGrad) { XCTAssertEqual(a, b, accuracy: 1e-6 * max(1, scale), label) }
        }
    }
}
