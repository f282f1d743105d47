import Distributed
import Foundation
import XCTest
import TestSupport
import Models
import TensorCore
@testable import Training

/// The stateful-component registry (`Training/State/`) through the real trainer and
/// checkpointer: a producer and a weight average that declare their state once are saved and
/// restored exactly, with no edit of the checkpoint or trainer code.
final class StatefulComponentTests: XCTestCase {
    var support: TinyRun!
    var dir: String { support.dir }
    override func setUpWithError() throws { support = try TinyRun() }
    override func tearDownWithError() throws { support.remove() }

    /// A toy producer whose state changes every step and steers its batches: a random stream
    /// (words) draws two candidates per slot, and a float tensor of decaying visit counts
    /// picks the less visited one. Not a pure function of the step: resuming exactly needs both.
    final class ToyProducer: BatchSource, StatefulComponent {
        let stateName = "toy_producer"
        let datasetSize: Int, batchSize: Int
        var rng = RNG(seed: 77)
        var visits: [Float]

        init(datasetSize: Int, batchSize: Int) {
            self.datasetSize = datasetSize; self.batchSize = batchSize
            visits = [Float](repeating: 0, count: datasetSize)
        }

        func batch(step: Int) -> [Int] {
            for i in visits.indices { visits[i] *= 0.7 }
            return (0..<batchSize).map { _ in
                let a = rng.below(datasetSize), b = rng.below(datasetSize)
                let pick = visits[a] <= visits[b] ? a : b
                visits[pick] += 1
                return pick
            }
        }

        // Its state is declared as a component, not as BatchSource words.
        var state: [UInt64] { [] }
        func restore(_ state: [UInt64]) throws {}

        func saveState() -> ComponentState {
            ComponentState(values: ["rng": .words(rng.words)], tensors: ["visits": StateTensor(visits)])
        }

        func restoreState(_ state: ComponentState, step: Int) throws {
            let words = try state.words("rng")
            guard words.count == 4 else { throw StateError(.value, "rng", "has \(words.count) words, needs 4") }
            rng = RNG(words: words)
            visits = try state.tensor("visits", count: datasetSize)
        }
    }

    /// A toy exponential moving average of the weights, kept by the run loop (not by the
    /// trainer): registered from outside, updated after every step.
    final class ToyAverage: StatefulComponent {
        let stateName = "toy_average"
        var weights: [Float]
        init(count: Int) { weights = [Float](repeating: 0, count: count) }
        func update(_ p: ParameterStore) { for i in weights.indices { weights[i] = 0.9 * weights[i] + 0.1 * p.values[i] } }
        func saveState() -> ComponentState { ComponentState(tensors: ["weights": StateTensor(weights)]) }
        func restoreState(_ state: ComponentState, step: Int) throws { weights = try state.tensor("weights", count: weights.count) }
    }

    /// The steps of `recipe` (from its checkpoint when `resume` is set) with a fresh toy
    /// producer, through the real `Trainer` and `Checkpointer`; the losses and the producer.
    func run(_ recipe: Recipe) throws -> (losses: [Double], producer: ToyProducer, average: ToyAverage, from: Int) {
        var producer: ToyProducer!, average: ToyAverage!
        let (losses, from) = try support.train(recipe, source: { setup in
            producer = ToyProducer(datasetSize: setup.train.count, batchSize: recipe.batchSize)
            return producer
        }, prepare: { trainer, setup in
            average = ToyAverage(count: setup.model.parameters.count)
            trainer.components.register(average)
        }, afterStep: { setup in average.update(setup.model.parameters) })
        return (losses, producer, average, from)
    }

    /// Every kind of small value survives state.json as it is, and the readers name the field
    /// when a value is missing or of another kind.
    func testStateValuesRoundTripAndReadersNameTheField() throws {
        let values: [String: StateValue] = [
            "count": .int(-7), "flag": .bool(true), "label": .string("queue"), "indices": .ints([3, 0, 9]),
            "stream": .words([0, 1, .max, 0x8000_0000_0000_0001]), "empty": .words([]),
        ]
        let saved = CheckpointState.SavedComponent(values: values, tensors: ["w": [2, 3]])
        let back = try JSONDecoder().decode(CheckpointState.SavedComponent.self, from: JSONEncoder().encode(saved))
        let state = ComponentState(values: back.values)
        XCTAssertEqual(try state.int("count", in: -10...0), -7)
        XCTAssertEqual(try state.bool("flag"), true)
        XCTAssertEqual(try state.string("label"), "queue")
        XCTAssertEqual(try state.ints("indices"), [3, 0, 9])
        XCTAssertEqual(try state.words("stream"), [0, 1, .max, 0x8000_0000_0000_0001])
        XCTAssertEqual(try state.words("empty"), [])
        XCTAssertEqual(back.tensors, ["w": [2, 3]])

        func problem(_ read: () throws -> Any) -> String {
            do { _ = try read(); return "accepted" } catch { return "\(error)" }
        }
        XCTAssertEqual(problem { try state.int("count", in: 0...5) }, "\"count\" is -7, outside 0...5")
        XCTAssertEqual(problem { try state.int("label", in: 0...5) }, "\"label\" is not an integer")
        XCTAssertEqual(problem { try state.bool("count") }, "\"count\" is not true or false")
        XCTAssertEqual(problem { try state.words("indices") }, "\"indices\" is not a list of 64-bit hex words")
        XCTAssertEqual(problem { try state.string("nothing") }, "\"nothing\" is missing")
        XCTAssertEqual(problem { try ComponentState(tensors: ["w": StateTensor([1, 2])]).tensor("w", count: 3) },
                       "\"w\" has 2 values, this run needs 3")
    }

    func testToyStatefulProducerResumesBitExact() throws {
        let full = try run(support.recipe(steps: 7, saveEvery: 3))
        var resuming = support.recipe(steps: 7, saveEvery: 3)
        resuming.resume = dir + "/run/checkpoints/step-000003"
        let resumed = try run(resuming)
        XCTAssertEqual(resumed.from, 3)
        XCTAssertEqual(resumed.losses.map(\.bitPattern), full.losses.suffix(from: 3).map(\.bitPattern),
                       "resumed \(resumed.losses) vs uninterrupted \(Array(full.losses.suffix(from: 3)))")
        XCTAssertEqual(resumed.producer.saveState(), full.producer.saveState(), "the producer ends in the same state")
        XCTAssertEqual(resumed.average.weights.map(\.bitPattern), full.average.weights.map(\.bitPattern), "the average too")

        // The producer's state is really in the checkpoint, and it matters: its tensor file
        // exists, and a producer starting afresh at step 3 draws other batches.
        let ckpt = dir + "/run/checkpoints/step-000003"
        XCTAssertTrue(FileManager.default.fileExists(atPath: ckpt + "/toy_producer.safetensors"))
        let saved = try CheckpointStore.readComponents(ckpt, try CheckpointStore.readState(ckpt))
        XCTAssertEqual(Set(saved.keys), ["trainer", "toy_producer", "optimizer", "toy_average"])
        let fresh = ToyProducer(datasetSize: 10, batchSize: 4)
        let restored = ToyProducer(datasetSize: 10, batchSize: 4)
        try restored.restoreState(try XCTUnwrap(saved["toy_producer"]), step: 3)
        XCTAssertNotEqual(fresh.batch(step: 3) + fresh.batch(step: 4), restored.batch(step: 3) + restored.batch(step: 4))
    }
}

/// A tiny GPT-2 run in a temporary directory, for tests of checkpoints through the real
/// trainer.
struct TinyRun {
    let dir: String
    init() throws {
        dir = try makeTemporaryDirectory("sft-dist-state")
    }
    func remove() { try? FileManager.default.removeItem(atPath: dir) }

    func recipe(steps: Int, saveEvery: Int) -> Recipe {
        var r = Recipe()
        r.steps = steps; r.saveEvery = saveEvery; r.keepLast = 0
        r.batchSize = 4; r.microBatchSize = 2; r.warmupSteps = 1; r.lr = 1e-2
        r.out = dir + "/run"
        return r
    }

    func makeSetup(_ recipe: Recipe) throws -> RunSetup {
        let tokenizer = ByteTokenizer()
        let model = GPT2(config: GPT2Config(vocabSize: tokenizer.vocabSize, contextLength: 16, embedDim: 8, layers: 1, heads: 2), seed: 3)
        let records = (0..<10).map { SourcedRecord(record: .promptCompletion(prompt: "p\($0)", completion: "c\($0 * 7)"), path: "t.jsonl", line: $0 + 1) }
        let data = try Dataset(records: records, path: "t.jsonl", tokenizer: tokenizer, maxLength: 16)
        let objective = try ObjectiveRegistry.make(name: recipe.objective, args: recipe.objectiveArgs)
        return RunSetup(recipe: recipe, tokenizer: tokenizer, model: model, train: data, heldOut: data,
                        objective: objective, referenceModel: nil)
    }

    /// The steps of `recipe` (from its checkpoint when `resume` is set) through the real
    /// `Trainer` and `Checkpointer`: the losses and the first step. `source` may give the
    /// batch source, `prepare` register components, `afterStep` run after every step.
    func train(_ recipe: Recipe, source: (RunSetup) -> BatchSource? = { _ in nil },
               prepare: (Trainer, RunSetup) -> Void = { _, _ in },
               afterStep: (RunSetup) -> Void = { _ in }) throws -> (losses: [Double], from: Int) {
        let setup = try makeSetup(recipe)
        let comm = LocalCommunicator()
        let trainer = Trainer(setup: setup, comm: comm, source: source(setup))
        prepare(trainer, setup)
        let checkpoints = Checkpointer(setup: setup, components: trainer.components, comm: comm, log: { _ in })
        let start = checkpoints.resume()?.step ?? 0
        var losses: [Double] = []
        for step in start..<recipe.steps {
            losses.append(trainer.step(step).loss)
            afterStep(setup)
            checkpoints.afterStep(step + 1)
        }
        return (losses, start)
    }
}
