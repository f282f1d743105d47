import Foundation
import XCTest
@testable import Models
@testable import Training

/// SuperHF (arXiv 2310.16763 §3) against an independent PyTorch/Python computation
/// (`scripts/make-superhf-references`): the round's best-of-k selection — weighted rewards of
/// the finished completions, the public code's stable top-k — and the loss NLL + c·KL(π_0 ‖ π_θ)
/// with dL/dlogits through the real trainer at several splits over ranks and micro-batches.
/// (The finite-difference check of the KL term is `ObjectiveGradientTests`' superhf rows.)
final class SuperHFReferenceTests: XCTestCase {
    struct Fixture: Decodable {
        struct Example: Decodable { var ids: [Int32]; var loss_mask: [UInt8] }
        struct Configuration: Decodable { var args: [String: String]; var loss: Double; var grad: [[Double]] }
        struct Prompt: Decodable { var rewards: [[Double]]; var finished: [Bool]; var best: [Int] }
        struct SelectionCase: Decodable { var k: Int; var top_k: Int; var weights: [Float]; var prompts: [Prompt] }
        var vocab: Int, seq_len: Int
        var examples: [Example]
        var logits: [[Float]], reference: [[Float]]
        var configurations: [Configuration]
        var selection: [SelectionCase]
    }

    static let fixture: Fixture = referenceFixture("superhf-reference.json")

    /// Reward function f of the fixture: completion "p<i>s<j>" scores `rewards[i][f][j]`.
    final class TableScorer: Scorer {
        let name: String
        let table: [String: Float]
        init(name: String, table: [String: Float]) { self.name = name; self.table = table }
        func score(_ items: [ScoringItem]) throws -> [Float] { items.map { table[$0.completion]! } }
    }

    func testBestOfKSelectionMatchesReference() throws {
        let tokenizer = ByteTokenizer()
        for (c, sc) in Self.fixture.selection.enumerated() {
            let prompts = sc.prompts.indices.map { i in
                SelfTrainPrompt(example: ChatFormat.promptCompletion(prompt: "q\(i) =", completion: "", source: "u:\(i + 1)", tokenizer: tokenizer),
                                index: -1, tokenizer: tokenizer, reference: nil)!
            }
            let rewards = (0..<2).map { f in
                RewardFunction(name: "r\(f)", scorer: TableScorer(name: "r\(f)", table: Dictionary(uniqueKeysWithValues:
                    sc.prompts.enumerated().flatMap { i, p in (0..<sc.k).map { j in ("p\(i)s\(j)", Float(p.rewards[f][j])) } })),
                               weight: sc.weights[f], needsReference: false)
            }
            let samples = sc.prompts.enumerated().map { i, p in
                (0..<sc.k).map { j in RoundSample(ids: tokenizer.encodePlain("p\(i)s\(j)"), text: "p\(i)s\(j)", logProbs: [], finished: p.finished[j]) }
            }
            var recipe = Recipe()
            recipe.selfTrain = "superhf"; recipe.selfTrainArgs = ["k": "\(sc.k)", "top_k": "\(sc.top_k)"]
            let round = SuperHFRound(candidates: prompts, options: try SelfTrainOptions(recipe: recipe), rewards: rewards, scoring: nil, seed: 1)
            let (outcome, records) = try round.decide(round: 0, prompts: prompts, samples: samples)
            let expected = sc.prompts.enumerated().flatMap { i, p in p.best.map { prompts[i].row(answer: samples[i][$0].ids) } }
            XCTAssertEqual(outcome.rows, expected, "case \(c): k \(sc.k), top_k \(sc.top_k), weights \(sc.weights)")
            for (i, p) in sc.prompts.enumerated() { XCTAssertEqual(records[i]["best"] as? [Int], p.best, "case \(c) prompt \(i)") }
        }
    }

    func testLossAndGradientMatchReferenceAtAnySplit() throws {
        let f = Self.fixture
        let examples = f.examples.enumerated().map { i, e in
            Example(fixture: e.ids, lossMask: e.loss_mask, source: "ref:\(i)")
        }
        for c in f.configurations {
            for (ranks, micro) in [(1, 2), (1, 5), (3, 1), (2, 2)] {
                let h = TrainerHarness(examples: examples, positions: f.seq_len, vocab: f.vocab, current: f.logits.flatMap { $0 },
                                       reference: f.reference.flatMap { $0 }, microBatchSize: micro, totalSteps: 4)
                let got = try h.run("superhf", c.args, ranks: ranks)[0]
                let label = "superhf \(c.args) at \(ranks) rank(s), micro-batches of \(micro)"
                XCTAssertEqual(got.loss, c.loss, accuracy: 2e-6 * max(1, abs(c.loss)), "\(label): loss")
                assertGradientMatchesReference(got.gradient, c.grad, label)
            }
        }
    }
}
