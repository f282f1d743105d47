import Distributed
import Foundation
import XCTest
import Models
import TensorCore
@testable import Training

/// Frozen parameters cost no gradient memory: after training steps through the real trainer,
/// a frozen tensor has no gradient at all and no page wholly inside a frozen range of the
/// store's gradient buffer is resident (`mincore`), for LoRA's base and for a `--freeze`-style
/// subset. The trainable ranges' pages are resident (so the residency check can see a page).
final class FrozenGradientMemoryTests: XCTestCase {
    /// A GPT-2 wide enough (C = 64) that its matrices span whole pages.
    func makeSetup(lora: Bool) throws -> RunSetup {
        var recipe = Recipe()
        recipe.batchSize = 4; recipe.microBatchSize = 2; recipe.steps = 2; recipe.lr = 1e-2
        if lora { recipe.loraRank = 2; recipe.loraAlpha = 4; recipe.loraTargets = "c_attn,c_fc" }
        let tokenizer = ByteTokenizer()
        let config = GPT2Config(vocabSize: tokenizer.vocabSize, contextLength: 32, embedDim: 64, layers: 2, heads: 2)
        let adapters = try LoRATraining.config(recipe).map { try $0.resolved(for: .gpt2, plan: config.layoutPlan) }
        let model = GPT2(config: config, seed: 3, lora: adapters)
        model.initializeAdapters(seed: recipe.seed)
        let records = (0..<8).map { SourcedRecord(record: .promptCompletion(prompt: "add \($0) 1 =", completion: " \($0 + 1)"), path: "t.jsonl", line: $0 + 1) }
        let data = try Dataset(records: records, path: "t.jsonl", tokenizer: tokenizer, maxLength: 32)
        return RunSetup(recipe: recipe, tokenizer: tokenizer, model: model, train: data, heldOut: data,
                        objective: try NLLObjective(), referenceModel: nil)
    }

    func checkNoFrozenGradientMemory(_ setup: RunSetup, trainable: TrainableSet?, _ what: String) throws {
        let trainer = Trainer(setup: setup, comm: LocalCommunicator(), trainable: trainable)
        for s in 0..<2 { XCTAssertTrue(trainer.step(s).loss.isFinite, what) }
        let p = setup.model.parameters
        let frozen = trainer.trainable.frozenRanges(p)
        XCTAssertGreaterThan(frozen.reduce(0) { $0 + $1.count }, p.count / 2, "\(what): most of the model is frozen")
        for e in p.entries where !trainer.trainable.names.contains(e.name) {
            XCTAssertFalse(p[e.name].hasGrad, "\(what): frozen \(e.name) has a gradient buffer")
        }
        var frozenPages = 0
        for r in frozen {
            let resident = try XCTUnwrap(ZeroedPages.residentPages(p.grads, r), "mincore")
            frozenPages += 1
            XCTAssertEqual(resident, 0, "\(what): \(resident) resident gradient pages in the frozen range \(r)")
        }
        XCTAssertGreaterThan(frozenPages, 0)
        let trainedPages = try trainer.trainable.ranges.reduce(0) { $0 + (try XCTUnwrap(ZeroedPages.residentPages(p.grads, $1))) }
        XCTAssertGreaterThan(trainedPages, 0, "\(what): the trainable gradients' pages are resident (mincore sees them)")
    }

    func testLoRABaseHasNoResidentGradient() throws {
        let setup = try makeSetup(lora: true)
        try checkNoFrozenGradientMemory(setup, trainable: nil, "LoRA")
    }

    func testFrozenSubsetHasNoResidentGradient() throws {
        let setup = try makeSetup(lora: false)
        let trainable = TrainableSet(setup.model.parameters) { $0.name.hasPrefix("transformer.h.1.") }
        try checkNoFrozenGradientMemory(setup, trainable: trainable, "--freeze")
    }
}
