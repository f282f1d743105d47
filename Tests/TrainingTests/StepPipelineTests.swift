import Distributed
import Foundation
import XCTest
import Models
import TensorCore
@testable import Training

/// The step pipeline's seams driven through the real `Trainer.step`: a trainable subset, a
/// producer with per-sequence fields, `observe`, and the pre-step scoring hook.
final class StepPipelineTests: XCTestCase {
    func makeSetup(objective: Objective? = nil, batch: Int = 4, optimizer: OptimizerKind = .adamw) throws -> RunSetup {
        var recipe = Recipe()
        recipe.batchSize = batch; recipe.microBatchSize = 2; recipe.steps = 5; recipe.lr = 1e-2
        recipe.optimizer = optimizer; recipe.weightDecay = 0.1
        let tokenizer = ByteTokenizer()
        let model = GPT2(config: GPT2Config(vocabSize: tokenizer.vocabSize, contextLength: 32, embedDim: 16, layers: 2, heads: 2), seed: 3)
        let records = (0..<8).map { SourcedRecord(record: .promptCompletion(prompt: "add \($0) 1 =", completion: " \($0 + 1)"), path: "t.jsonl", line: $0 + 1) }
        let data = try Dataset(records: records, path: "t.jsonl", tokenizer: tokenizer, maxLength: 32)
        return RunSetup(recipe: recipe, tokenizer: tokenizer, model: model, train: data, heldOut: data,
                        objective: try objective ?? NLLObjective(), referenceModel: nil)
    }

    /// Only block 1 (and the final norm) trainable, declared from outside the trainer:
    /// everything else stays bit-identical, its gradients are never written (the backward
    /// kernels skipped them), the optimizer holds moments for the trainable floats only, and
    /// the trainable parameters move.
    func testFrozenParametersStayBitIdenticalAndTheTrainableOnesMove() throws {
        for optimizer in [OptimizerKind.adamw, .sgd] {
            let setup = try makeSetup(optimizer: optimizer)
            let params = setup.model.parameters
            let trainable = TrainableSet(params) { $0.name.hasPrefix("transformer.h.1.") || $0.name.hasPrefix("transformer.ln_f.") }
            XCTAssertEqual(trainable.ranges.count, 1, "block 1 and ln_f are adjacent in the layout")
            let before = params.valueBuffer.map { $0 }
            let trainer = Trainer(setup: setup, comm: LocalCommunicator(), trainable: trainable)
            for s in 0..<3 { XCTAssertTrue(trainer.step(s).loss.isFinite) }
            var moved = 0
            for e in params.entries {
                let now = Array(params.valueBuffer[e.offset..<(e.offset + e.count)])
                let then = Array(before[e.offset..<(e.offset + e.count)])
                if trainable.names.contains(e.name) {
                    if now != then { moved += 1 }
                } else {
                    XCTAssertEqual(now.map(\.bitPattern), then.map(\.bitPattern), "\(optimizer): frozen \(e.name) changed")
                    XCTAssertTrue(UnsafeBufferPointer(start: params.grads + e.offset, count: e.count).allSatisfy { $0 == 0 },
                                  "\(optimizer): frozen \(e.name) got a gradient")
                }
            }
            XCTAssertEqual(moved, trainable.names.count, "\(optimizer): every trainable parameter moves")
            let moments = trainer.optimizer.state.values.map(\.count).max()!
            XCTAssertEqual(moments, trainable.count, "\(optimizer): moments only for the trainable floats")
            XCTAssertLessThan(trainable.count, params.count)
        }
    }

    /// The same steps with every parameter declared trainable explicitly and by default give
    /// bit-identical weights (the seam changes nothing for a full fine-tune).
    func testTheFullTrainableSetIsTheDefault() throws {
        var sums: [UInt64] = []
        for explicit in [false, true] {
            let setup = try makeSetup()
            let trainer = Trainer(setup: setup, comm: LocalCommunicator(),
                                  trainable: explicit ? TrainableSet(setup.model.parameters) { _ in true } : nil)
            XCTAssertEqual(trainer.trainable.ranges, [0..<setup.model.parameters.count])
            for s in 0..<2 { _ = trainer.step(s) }
            sums.append(setup.model.parameters.checksum())
        }
        XCTAssertEqual(sums[0], sums[1])
    }

    /// A toy producer: a pool of 2×batch rows scored before the step through the pre-step
    /// hook (forward-only, the current loss), the highest-loss half trained with per-sequence
    /// fields set; `observe` must then get, keyed by example, the losses the step's forward
    /// saw — the same numbers the hook computed on the same weights.
    func testProducerFieldsReachTheObjectiveAndObserveGetsPerExampleLosses() throws {
        final class HighestLoss: StepProducer {
            let name = "highest-loss"
            var preScores: [Int: [Float]] = [:]
            var observed: [[SequenceStatistics]] = []
            var observes: Bool { true }
            func prepare(_ p: StepPreparation) -> StepBatch {
                let pool = (0..<p.examples.count).map { StepSequence(demonstration: p.examples[$0], index: $0) }
                let scores = p.score(pool, with: LossScorer())
                preScores = Dictionary(uniqueKeysWithValues: scores.enumerated().map { ($0.offset, $0.element) })
                let chosen = pool.indices.sorted { scores[$0][0] / scores[$0][1] > scores[$1][0] / scores[$1][1] }.prefix(4)
                return p.decide {
                    StepBatch(step: p.step, sequences: chosen.enumerated().map { k, i in
                        var s = pool[i]
                        s.advantage = Float(k) + 0.5
                        s.group = k / 2
                        s.behaviourLogProbs = s.ids.indices.map { -Float($0) * 0.01 }
                        return s
                    })
                }
            }
            func observe(step: Int, statistics: [SequenceStatistics]) { observed.append(statistics) }
            var state: [UInt64] { [] }
            func restore(_ state: [UInt64]) throws {}
        }
        final class Recording: Objective {
            let name = "recording"
            let requirements = ObjectiveRequirements(behaviourLogProbs: true)
            var advantages: [Int32: Float] = [:]
            var behaviour: [Float] = []
            let nll = try! NLLObjective()
            func lossAndGradient(_ input: ObjectiveInput, dlogits: UnsafeMutablePointer<Float>) -> ObjectiveResult {
                for r in 0..<input.rows where input.sequenceId[r] >= 0 {
                    advantages[input.sequenceId[r]] = input.sequences[Int(input.sequenceId[r])].advantage
                }
                // Position t of a sequence predicts ids[t + 1]: the producer's −(t + 1)/100.
                var first: [Int32: Int] = [:]
                for r in 0..<input.rows where input.sequenceId[r] >= 0 {
                    let t = r - (first[input.sequenceId[r]] ?? r)
                    first[input.sequenceId[r]] = first[input.sequenceId[r]] ?? r
                    if input.mask[r] != 0 { behaviour.append(input.behaviourLogProbs[r] + Float(t + 1) * 0.01) }
                }
                return nll.lossAndGradient(input, dlogits: dlogits)
            }
        }
        // Unfused (an objective that is not row-local) and fused (nll on GPT-2) paths.
        for fused in [false, true] {
            let objective = Recording()
            let setup = try makeSetup(objective: fused ? nil : objective)
            let producer = HighestLoss()
            let trainer = Trainer(setup: setup, comm: LocalCommunicator(), producer: producer)
            XCTAssertEqual(trainer.canFuseHead, fused)
            _ = trainer.step(0)
            if !fused {
                XCTAssertEqual(objective.advantages, [0: 0.5, 1: 1.5, 2: 2.5, 3: 3.5])
                XCTAssertFalse(objective.behaviour.isEmpty)
                XCTAssertTrue(objective.behaviour.allSatisfy { abs($0) < 1e-6 }, "behaviour log-probs misaligned: \(objective.behaviour)")
            }
            XCTAssertEqual(producer.observed.count, 1)
            let stats = producer.observed[0]
            XCTAssertEqual(stats.map(\.index), [0, 1, 2, 3])
            for s in stats {
                let pre = producer.preScores[s.example]!
                XCTAssertEqual(Float(s.lossTokens), pre[1], "example \(s.example)")
                XCTAssertEqual(s.lossSum, Double(pre[0]), accuracy: 1e-4 * max(1, abs(Double(pre[0]))), "example \(s.example)")
                XCTAssertEqual(lossTokenCount(setup.train.examples[s.example]), s.lossTokens)
            }
            // The hook chose the highest current losses: every trained example's mean loss is at
            // least every untrained one's.
            let trained = Set(stats.map(\.example))
            let mean = { (i: Int) -> Float in producer.preScores[i]![0] / producer.preScores[i]![1] }
            let lowestTrained = trained.map(mean).min()!
            for i in 0..<setup.train.count where !trained.contains(i) { XCTAssertLessThanOrEqual(mean(i), lowestTrained) }
        }
    }

    /// Pair-linked sequences (DPO's chosen/rejected) are one sharding unit: they always land
    /// in the same micro-batch, padded or packed, even when the micro-batch size would cut
    /// between them; unlinked sequences are cut exactly at the size.
    func testPairsShareAMicroBatch() throws {
        final class Pairs: StepProducer {
            let name = "pairs"
            func prepare(_ p: StepPreparation) -> StepBatch {
                var seqs = (0..<6).map { StepSequence(demonstration: p.examples[$0], index: $0) }
                for (a, b) in [(1, 2), (3, 5)] {
                    seqs[a].pair = b; seqs[a].pairRole = .chosen
                    seqs[b].pair = a; seqs[b].pairRole = .rejected
                }
                return p.decide { StepBatch(step: p.step, sequences: seqs) }
            }
            var state: [UInt64] { [] }
            func restore(_ state: [UInt64]) throws {}
        }
        final class Calls: Objective {
            let name = "calls"
            let requirements = ObjectiveRequirements()
            var calls: [Set<Int32>] = []
            func lossAndGradient(_ input: ObjectiveInput, dlogits: UnsafeMutablePointer<Float>) -> ObjectiveResult {
                calls.append(Set(input.sequenceId.filter { $0 >= 0 }))
                return ObjectiveResult(loss: 0)
            }
        }
        XCTAssertEqual(StepBatch(step: 0, sequences: try Pairs().prepare(StepPreparation(
            step: 0, comm: LocalCommunicator(), model: makeSetup().model, examples: makeSetup().train.examples,
            tokenizer: ByteTokenizer(), seed: 1, microBatchSize: 2)).sequences).units, [[0], [1, 2], [3, 5], [4]])
        for packing in [false, true] {
            let objective = Calls()
            var setup = try makeSetup(objective: objective)
            var recipe = setup.recipe
            recipe.packing = packing; recipe.maxLength = packing ? 12 : 32
            setup = RunSetup(recipe: recipe, tokenizer: setup.tokenizer, model: setup.model, train: setup.train,
                             heldOut: setup.heldOut, objective: objective, referenceModel: nil)
            _ = Trainer(setup: setup, comm: LocalCommunicator(), producer: Pairs()).step(0)
            XCTAssertEqual(objective.calls.reduce(0) { $0 + $1.count }, 6, "packing \(packing): every sequence trains once")
            for (a, b) in [(1, 2), (3, 5)] {
                XCTAssertTrue(objective.calls.contains { $0.contains(Int32(a)) && $0.contains(Int32(b)) },
                              "packing \(packing): pair \(a)–\(b) split: \(objective.calls)")
            }
            if !packing { XCTAssertEqual(objective.calls, [[0, 1, 2], [3, 5], [4]]) }
        }
    }

    func testStepBatchCrossesRanksUnchanged() {
        var s = StepSequence(example: 7, origin: .rollout, ids: [1, 2, 3], lossMask: [0, 1, 1], promptLength: 1)
        s.group = 2; s.rewards = [1, 0.25]; s.advantage = -0.5; s.behaviourLogProbs = [0, -1.5, -0.125]
        s.tokenWeights = [1, 0.5, 2]; s.weight = 0.75; s.pair = 1; s.pairRole = .chosen
        var t = StepSequence(example: -1, origin: .pseudoLabel, ids: [], lossMask: [], promptLength: 0)
        t.pair = 0; t.pairRole = .rejected
        var batch = StepBatch(step: 12, sequences: [s, t])
        XCTAssertEqual(StepBatch(wireBytes: batch.wireBytes), batch)
        batch.lossTokensPerStep = 2.5; batch.tokensSeenBefore = 3
        XCTAssertEqual(StepBatch(wireBytes: batch.wireBytes), batch)
    }

    func testRankShardDealsAndInterleavesBack() {
        for size in 1...4 {
            for count in [0, 1, 5, 9] {
                let shards = (0..<size).map { RankShard(rank: $0, size: size) }
                let perRank = shards.map { $0.indices(of: count) }
                XCTAssertEqual(perRank.flatMap { $0 }.sorted(), Array(0..<count))
                XCTAssertEqual(shards[0].interleave(perRank, count: count), Array(0..<count))
                for (r, sh) in shards.enumerated() {
                    for (j, i) in perRank[r].enumerated() { XCTAssertEqual(sh.global(j), i) }
                }
            }
        }
    }
}
