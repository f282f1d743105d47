import Distributed
import Foundation
import Models
import TensorCore
import TestSupport
@testable import Training

/// A "model" whose logits are its parameters: one row per (example, position), looked up by
/// the example's first token (its index in the dataset) and the position. Through the real
/// trainer, the gradient of that table is exactly dL/dlogits of every position, whatever
/// sharding, micro-batching and ordering the step used, and setting the table sets the logits
/// the objective sees.
final class LogitTableModel: LanguageModel {
    let parameters: ParameterStore
    var generationConfig: GenerationConfig?
    let vocabSize: Int
    let positions: Int
    var maxSequenceLength: Int { positions }
    var configJSON: [String: Any] { ["model_type": "logit-table"] }
    var blockRanges: [Range<Int>] { [] }

    init(examples: Int, positions: Int, vocab: Int, values: [Float]? = nil) {
        self.positions = positions; vocabSize = vocab
        parameters = ParameterStore(layout: [("logits", [examples * positions, vocab])])
        if let values { set(values) }
    }

    var table: Tensor { parameters["logits"] }
    func set(_ values: [Float]) {
        precondition(values.count == table.count)
        table.data.update(from: values, count: values.count)
    }
    var gradient: [Float] { Array(UnsafeBufferPointer(start: table.grad, count: table.count)) }

    func makeReplica() -> LanguageModel {
        LogitTableModel(examples: table.shape[0] / positions, positions: positions, vocab: vocabSize)
    }

    func forward(_ tape: Tape, inputs: [Int32], positions: [Int32], segments: [Int32]?, batch: Int, seqLen: Int) -> Tensor {
        let rows = (0..<batch * seqLen).map { i in inputs[i / seqLen * seqLen] * Int32(self.positions) + positions[i] }
        return tape.embedding(rows, table: table)
    }
}

/// The real `Trainer` over a `LogitTableModel`: `Trainer(setup:comm:)` and `step(_:)`, with the
/// default batch source, at one rank or several (ranks as threads, `InProcessGroup`).
struct TrainerHarness {
    var examples: [Example]
    var positions: Int
    var vocab: Int
    var current: [Float]
    var reference: [Float]? = nil
    var old: [Float]? = nil
    var microBatchSize = 2
    var totalSteps = 4
    var seed: UInt64 = 1234
    /// Replaces the default producer (rollout objectives: `FixedRolloutProducer`), built per rank.
    var makeProducer: ((Dataset) -> StepProducer)? = nil
    /// Run-time settings of the objective that the run's wiring would set (GRPO's max_completion_length).
    var configureObjective: ((Objective) -> Void)? = nil
    /// Train examples 2i, 2i + 1 as linked pairs (`PairProducer`) even when the objective does not
    /// read pair data itself (SPIN, whose producer makes its pairs).
    var linkPairs = false
    /// The recipe's rollout_temperature (rollout objectives divide the logits by it).
    var rolloutTemperature = 1.0
    /// Sequences in the logit table when there are more than examples: TPO's gold answers
    /// (`Example.gold`), whose first id is their row after the examples'.
    var tableSequences: Int? = nil

    /// Sequences given position by position: (target, in the loss?) and that position's
    /// current / reference / old logits rows (each [V]). Example e's first token is e, which
    /// is how the table model finds its rows; the other inputs are the targets shifted.
    init(vocab: Int, sequences: [[(target: Int32, trained: Bool)]], current: [[Float]],
         reference: [[Float]]? = nil, old: [[Float]]? = nil) {
        let positions = sequences.map(\.count).max()!
        self.vocab = vocab; self.positions = positions
        examples = sequences.enumerated().map { e, seq in
            Example(ids: [Int32(e)] + seq.map(\.target), lossMask: [0] + seq.map { $0.trained ? 1 : 0 },
                    promptLength: 1, answer: nil, source: "harness:\(e)")
        }
        // Table row e·positions + t holds position t of sequence e (rows past a sequence's end: 0).
        func table(_ rows: [[Float]]) -> [Float] {
            var out = [Float](repeating: 0, count: sequences.count * positions * vocab)
            var next = 0
            for (e, seq) in sequences.enumerated() {
                for t in 0..<seq.count { out.replaceSubrange((e * positions + t) * vocab..<(e * positions + t + 1) * vocab, with: rows[next]); next += 1 }
            }
            return out
        }
        self.current = table(current)
        self.reference = reference.map(table)
        self.old = old.map(table)
    }

    init(examples: [Example], positions: Int, vocab: Int, current: [Float], reference: [Float]? = nil,
         old: [Float]? = nil, microBatchSize: Int = 2, totalSteps: Int = 4) {
        self.examples = examples; self.positions = positions; self.vocab = vocab; self.current = current
        self.reference = reference; self.old = old; self.microBatchSize = microBatchSize; self.totalSteps = totalSteps
    }

    /// dL/dlogits of position t of sequence e.
    func gradient(_ result: Result, sequence e: Int, position t: Int) -> ArraySlice<Float> {
        let row = e * positions + t
        return result.gradient[row * vocab..<(row + 1) * vocab]
    }

    struct Result {
        var loss: Double
        var gradient: [Float]
        var diagnostics: [String: Double]
        var lossTokens: Int
    }

    /// Steps 0…`steps.upperBound` of one run on `ranks` ranks at learning rate 0 (the logits
    /// stay as set): step 0 takes the old-policy snapshot from `old` (when given), then the
    /// table is set to `current` and the steps in `steps` are reported (from rank 0; every
    /// rank's gradient is the same after the allreduce, which is checked).
    func run(_ objective: String, _ args: [String: String] = [:], ranks: Int = 1,
             steps: ClosedRange<Int> = 1...1) throws -> [Result] {
        let probe = try ObjectiveRegistry.make(name: objective, args: args)   // a bad name fails here, not on a thread
        let recipe = makeRecipe(objective, args, pairs: probe.requirements.pairs)
        let perRank: [[Result]] = InProcessGroup.run(size: ranks) { comm in
            let (trainer, model) = makeTrainer(objective, args, comm: comm, recipe: recipe)
            var results: [Result] = []
            for step in 0...steps.upperBound {
                if step == 1 || steps.lowerBound == 0 && step == 0 { model.set(current) }
                let report = trainer.step(step)
                guard steps.contains(step) else { continue }
                results.append(Result(loss: report.loss, gradient: model.gradient,
                                      diagnostics: Dictionary(report.diagnostics, uniquingKeysWith: { a, _ in a }),
                                      lossTokens: report.lossTokens))
            }
            return results
        }
        for r in 1..<ranks where perRank[r].map(\.gradient) != perRank[0].map(\.gradient) {
            throw HarnessError("rank \(r)'s gradient differs from rank 0's after the allreduce")
        }
        return perRank[0]
    }

    func makeRecipe(_ objective: String, _ args: [String: String], pairs: Bool) -> Recipe {
        var recipe = Recipe()
        // Pair objectives sample pairs (examples 2i, 2i + 1): every pair once per step.
        recipe.batchSize = pairs || linkPairs ? examples.count / 2 : examples.count; recipe.microBatchSize = microBatchSize; recipe.steps = totalSteps
        recipe.lr = 0; recipe.warmupSteps = 0; recipe.schedule = .constant; recipe.weightDecay = 0; recipe.gradClip = 0
        recipe.objective = objective; recipe.objectiveArgs = args; recipe.seed = seed
        recipe.rolloutTemperature = rolloutTemperature
        return recipe
    }

    /// The real trainer over a table model holding `old ?? current`, on one rank of a group.
    func makeTrainer(_ objective: String, _ args: [String: String], comm: Communicator, recipe: Recipe) -> (Trainer, LogitTableModel) {
        let data = Dataset(examples: examples, report: LoadReport(path: "harness", maxLength: positions + 1, truncation: .right))
        let model = LogitTableModel(examples: tableSequences ?? examples.count, positions: positions, vocab: vocab, values: old ?? current)
        let objective = try! ObjectiveRegistry.make(name: objective, args: args)
        configureObjective?(objective)
        let referenceModel = objective.requirements.referenceModel || objective.requirements.tokenLabels
            ? LogitTableModel(examples: tableSequences ?? examples.count, positions: positions, vocab: vocab, values: reference ?? current) : nil
        let setup = RunSetup(recipe: recipe, tokenizer: ByteTokenizer(), model: model, train: data, heldOut: data,
                             objective: objective, referenceModel: referenceModel)
        let pairs = linkPairs ? PairProducer(source: UniformSampler(datasetSize: examples.count / 2, batchSize: examples.count / 2, seed: seed)) : nil
        return (Trainer(setup: setup, comm: comm, producer: makeProducer?(data) ?? pairs), model)
    }

    /// The trainer's evaluation of the producer's first batch at `current` (`Trainer.evaluateObjective`,
    /// as grpo's evaluation runs its held-out rollouts), from rank 0, with every rank's loss checked equal.
    /// Also the progress rank 0 reported: (done, total) per micro-batch.
    func evaluate(_ objective: String, _ args: [String: String] = [:], ranks: Int = 1) throws -> (ObjectiveEvaluation, progress: [[Int]]) {
        let probe = try ObjectiveRegistry.make(name: objective, args: args)
        let recipe = makeRecipe(objective, args, pairs: probe.requirements.pairs)
        let perRank: [(ObjectiveEvaluation, [[Int]])] = InProcessGroup.run(size: ranks) { comm in
            let (trainer, model) = makeTrainer(objective, args, comm: comm, recipe: recipe)
            model.set(current)
            let batch = trainer.source.prepare(StepPreparation(step: 0, comm: comm, model: model, examples: examples,
                                                               tokenizer: ByteTokenizer(), seed: seed, microBatchSize: microBatchSize))
            var progress: [[Int]] = []
            let result = trainer.evaluateObjective(batch, temperature: trainer.logitTemperature) { _, done, total in progress.append([done, total]) }
            return (result, progress)
        }
        for r in 1..<ranks where perRank[r].0.loss != perRank[0].0.loss {
            throw HarnessError("rank \(r)'s evaluation loss differs from rank 0's")
        }
        return perRank[0]
    }

    struct HarnessError: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }
}
