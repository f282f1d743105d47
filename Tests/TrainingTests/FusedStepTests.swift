import Distributed
import Foundation
import Models
import TensorCore
@testable import Training
import XCTest

/// A whole trainer step with the LM head fused into the loss (GPT-2 and a row-local
/// objective: logits computed and differentiated 256 rows at a time, never stored) against the
/// same step unfused (full logits, the objective over all rows, then backward): the same loss
/// and the same gradient of every parameter, with label smoothing on.
final class FusedStepTests: XCTestCase {
    /// The model without `HiddenStateModel`, so the trainer cannot fuse its head.
    final class Unfused: LanguageModel {
        let inner: LanguageModel
        init(_ inner: LanguageModel) { self.inner = inner }
        var parameters: ParameterStore { inner.parameters }
        var generationConfig: GenerationConfig?
        var vocabSize: Int { inner.vocabSize }
        var maxSequenceLength: Int { inner.maxSequenceLength }
        var configJSON: [String: Any] { inner.configJSON }
        var blockRanges: [Range<Int>] { inner.blockRanges }
        func makeReplica() -> LanguageModel { Unfused(inner.makeReplica()) }
        func forward(_ tape: Tape, inputs: [Int32], positions: [Int32], segments: [Int32]?, batch: Int, seqLen: Int) -> Tensor {
            inner.forward(tape, inputs: inputs, positions: positions, segments: segments, batch: batch, seqLen: seqLen)
        }
    }

    func testFusedHeadStepEqualsUnfusedStep() throws {
        let tokenizer = ByteTokenizer()
        // Micro-batches of 6 rows of 50–63 positions: more than one 256-row chunk of the fused head.
        let records = (0..<12).map { i in
            SourcedRecord(record: .promptCompletion(prompt: "add \(i) \(i * 7) = ", completion: String(repeating: "\(i * 8) ", count: 20 + i % 3)),
                          path: "t.jsonl", line: i + 1)
        }
        let data = try Dataset(records: records, path: "t.jsonl", tokenizer: tokenizer, maxLength: 64)
        let shortest = data.examples.map { $0.ids.count - 1 }.min()!
        XCTAssertGreaterThan(6 * shortest, 256, "every micro-batch must span more than one 256-row chunk of the fused head")
        var recipe = Recipe()
        recipe.batchSize = 12; recipe.microBatchSize = 6; recipe.steps = 2
        recipe.lr = 0; recipe.warmupSteps = 0; recipe.schedule = .constant; recipe.gradClip = 0; recipe.weightDecay = 0
        recipe.objectiveArgs = ["label_smoothing": "0.1"]
        let config = GPT2Config(vocabSize: tokenizer.vocabSize, contextLength: 64, embedDim: 16, layers: 2, heads: 2)
        var results: [(loss: Double, grad: [Float], fused: Bool)] = []
        for fuse in [true, false] {
            let gpt = GPT2(config: config, seed: 5)
            let model: LanguageModel = fuse ? gpt : Unfused(gpt)
            let setup = RunSetup(recipe: recipe, tokenizer: tokenizer, model: model, train: data, heldOut: data,
                                 objective: try NLLObjective(labelSmoothing: 0.1), referenceModel: nil)
            let trainer = Trainer(setup: setup, comm: LocalCommunicator())
            let report = trainer.step(0)
            XCTAssertGreaterThan(report.tokens, 0)
            results.append((report.loss, Array(model.parameters.gradBuffer), trainer.canFuseHead))
        }
        XCTAssertEqual(results.map(\.fused), [true, false], "the first step must take the fused path, the second not")
        XCTAssertEqual(results[0].loss, results[1].loss, accuracy: 1e-6 * results[1].loss)
        let scale = results[1].grad.map(abs).max()!
        XCTAssertGreaterThan(scale, 0)
        for (i, (a, b)) in zip(results[0].grad, results[1].grad).enumerated() where abs(a - b) > 1e-5 * scale + 1e-4 * abs(b) {
            XCTFail("parameter \(i): fused \(a), unfused \(b)")
            break
        }
    }
}
