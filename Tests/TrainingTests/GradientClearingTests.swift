import Distributed
import Foundation
import XCTest
import Models
import TensorCore
@testable import Training

/// AdamW leaves the trainable gradients at zero in its update pass and the trainer then skips
/// its own zeroing pass before the next step (Trainer+GradientClearing.swift). The run must
/// be bit-identical to one that finds stale gradients before every step and zeroes them —
/// with gradient accumulation (2 micro-batches), a frozen block and weight decay.
final class GradientClearingTests: XCTestCase {
    func makeSetup() throws -> RunSetup {
        var recipe = Recipe()
        recipe.batchSize = 4; recipe.microBatchSize = 2; recipe.steps = 4; recipe.lr = 1e-2; recipe.weightDecay = 0.1
        let tokenizer = ByteTokenizer()
        let model = GPT2(config: GPT2Config(vocabSize: tokenizer.vocabSize, contextLength: 32, embedDim: 16, layers: 2, heads: 2), seed: 5)
        let records = (0..<8).map { SourcedRecord(record: .promptCompletion(prompt: "sub \($0) 1 =", completion: " \($0 - 1)"), path: "t.jsonl", line: $0 + 1) }
        let data = try Dataset(records: records, path: "t.jsonl", tokenizer: tokenizer, maxLength: 32)
        return RunSetup(recipe: recipe, tokenizer: tokenizer, model: model, train: data, heldOut: data,
                        objective: try NLLObjective(), referenceModel: nil)
    }

    func testClearingInTheUpdateMatchesZeroingBeforeEachStep() throws {
        var runs: [[UInt32]] = []
        for staleGradients in [false, true] {
            let setup = try makeSetup()
            let params = setup.model.parameters
            let trainable = TrainableSet(params) { !$0.name.hasPrefix("transformer.h.0.") }
            let trainer = Trainer(setup: setup, comm: LocalCommunicator(), trainable: trainable)
            trainer.clearGradientsInUpdate = true
            for s in 0..<4 {
                XCTAssertTrue(trainer.step(s).loss.isFinite)
                XCTAssertTrue(trainer.gradientsCleared, "AdamW cleared the gradients of step \(s)")
                for r in trainable.ranges {
                    XCTAssertNil(UnsafeBufferPointer(start: params.grads + r.lowerBound, count: r.count).firstIndex { $0 != 0 },
                                 "a trainable gradient is left non-zero after step \(s)")
                }
                if staleGradients {
                    // What the buffer held before the optimizer cleared it: the trainer must zero it.
                    for r in trainable.ranges { (params.grads + r.lowerBound).update(repeating: 0.25, count: r.count) }
                    trainer.gradientsCleared = false
                }
            }
            runs.append(params.valueBuffer.map(\.bitPattern))
        }
        XCTAssertEqual(runs[0], runs[1], "clearing in the update changed the trained weights")
    }
}
