import Distributed
import Foundation
import Models
import TensorCore
import TestSupport
import XCTest
@testable import Training

/// ZeRO-2 under gradient accumulation, through the real `Trainer.step` with ranks as threads:
/// every micro-batch's gradient is reduce-scattered into the shard (one round per micro-batch
/// of the rank with the most, ranks with fewer joining with a zero gradient), so the full
/// gradient is released after each micro-batch, and the shards still assemble the summed
/// gradient of the unsharded run (`LogitTableModel`: its gradient is dL/dlogits itself).
final class ZeroAccumulationTests: XCTestCase {
    static let vocab = 16, positions = 4, examples = 8

    /// Example e: first token e (the table row), then targets varying with e, all in the loss.
    static let data: [Example] = (0..<examples).map { e in
        let targets = (0..<positions).map { Int32((e * 5 + $0 * 3) % vocab) }
        return Example(ids: [Int32(e)] + targets, lossMask: [0] + [UInt8](repeating: 1, count: positions),
                       promptLength: 1, answer: nil, source: "zero-accumulation:\(e)")
    }

    struct RankResult {
        var gradient: [Float]           // zero 0: the summed full gradient; zero 2: this rank's parts only
        var owned: [Range<Int>] = []
        var shard: [Float] = []
        var rounds = 0
        var microBatches = 0
    }

    /// One step (step 0, learning rate 0) on `ranks` ranks.
    func step(ranks: Int, zero: Int, microBatchSize: Int) -> [RankResult] {
        var recipe = Recipe()
        recipe.batchSize = Self.examples; recipe.microBatchSize = microBatchSize; recipe.steps = 2
        recipe.lr = 0; recipe.warmupSteps = 0; recipe.schedule = .constant; recipe.weightDecay = 0; recipe.gradClip = 0
        recipe.zero = zero
        let data = Dataset(examples: Self.data, report: LoadReport(path: "zero", maxLength: Self.positions + 1, truncation: .right))
        var rng = RNG(seed: 9)
        let table = (0..<(Self.examples * Self.positions * Self.vocab)).map { _ in rng.uniform() * 4 - 2 }
        return InProcessGroup.run(size: ranks) { comm in
            let model = LogitTableModel(examples: Self.examples, positions: Self.positions, vocab: Self.vocab, values: table)
            let objective = try! ObjectiveRegistry.make(name: "nll", args: [:])
            let setup = RunSetup(recipe: recipe, tokenizer: ByteTokenizer(), model: model, train: data, heldOut: data,
                                 objective: objective, referenceModel: nil)
            let trainer = Trainer(setup: setup, comm: comm,
                                  source: UniformSampler(datasetSize: Self.examples, batchSize: Self.examples, seed: 3))
            _ = trainer.step(0)
            // Rank r trains sequences r, r + ranks, … in micro-batches of `microBatchSize`.
            let mine = (Self.examples - comm.rank + comm.size - 1) / comm.size
            var r = RankResult(gradient: model.gradient, microBatches: (mine + microBatchSize - 1) / microBatchSize)
            if let sharded = trainer.zero?.gradients {
                r.owned = sharded.owned
                r.shard = sharded.shardValues()
                r.rounds = sharded.roundsThisStep
            }
            return r
        }
    }

    /// The full gradient assembled from every rank's shard.
    func assembled(_ results: [RankResult], count: Int) -> [Float] {
        var full = [Float](repeating: .nan, count: count)
        for r in results {
            var k = 0
            for range in r.owned { for i in range { full[i] = r.shard[k]; k += 1 } }
        }
        return full
    }

    func testEveryMicroBatchIsReduceScatteredAndTheShardsSumTheUnshardedGradient() {
        let expected = step(ranks: 1, zero: 0, microBatchSize: 2)[0].gradient
        XCTAssertGreaterThan(expected.map(abs).max()!, 1e-3, "the reference gradient is not zero")
        // (ranks, micro-batch size): 1 rank, 4 rounds; 2 ranks, 4 rounds each; 3 ranks with 2, 2
        // and 1 micro-batches (rank 2 joins round 2 with a zero gradient); 3 ranks, 3/3/2.
        for (ranks, micro) in [(1, 2), (2, 1), (3, 2), (3, 1)] {
            let results = step(ranks: ranks, zero: 2, microBatchSize: micro)
            let rounds = results.map(\.microBatches).max()!
            XCTAssertGreaterThan(rounds, 1, "\(ranks) ranks, micro-batch \(micro): the step accumulates")
            for r in results {
                XCTAssertEqual(r.rounds, rounds, "\(ranks) ranks, micro-batch \(micro): one reduce-scatter round per micro-batch")
                XCTAssertEqual(r.gradient.filter { $0 != 0 }.count, 0, "the full gradient is released after the last round")
            }
            let got = assembled(results, count: expected.count)
            for i in expected.indices where abs(got[i] - expected[i]) > 1e-6 + 1e-5 * abs(expected[i]) {
                XCTFail("\(ranks) ranks, micro-batch \(micro): gradient \(i) is \(got[i]) with ZeRO-2, \(expected[i]) unsharded")
                break
            }
        }
    }
}
