import Foundation
import XCTest
@testable import Models
@testable import TensorCore
@testable import Training

/// SPIN (`SPINObjective`) through the real trainer: with the opponent (the old-policy snapshot
/// taken at the iteration's first step) holding the fixture's reference logits, its loss, reward
/// means and dL/dlogits are those of the independent PyTorch DPO implementation
/// (`scripts/make-dpo-reference`) — SPIN is DPO against the previous iteration's model.
final class SPINTests: XCTestCase {
    func harness(microBatchSize: Int) -> TrainerHarness {
        let f = DPOTests.fixture
        let examples = f.examples.enumerated().map { i, e in
            Example(fixture: e.ids, lossMask: e.loss_mask, source: "pair:\(i / 2)")
        }
        var h = TrainerHarness(examples: examples, positions: f.seq_len, vocab: f.vocab, current: f.logits.current.flatMap { $0 },
                               old: f.logits.reference.flatMap { $0 }, microBatchSize: microBatchSize)
        h.linkPairs = true
        return h
    }

    func testLossGradientAndRewardsMatchTheReference() throws {
        // SPIN's loss is DPO's sigmoid one: the fixture's plain references (its others are dpo's loss types).
        let plain = DPOTests.fixture.references.filter {
            $0.loss_type == "sigmoid" && $0.f_divergence_type == "reverse_kl" && $0.ld_alpha == nil && !$0.use_weighting
        }
        XCTAssertEqual(plain.map(\.beta), [0.1, 0.5])
        for ref in plain {
            for (ranks, micro) in [(1, 8), (2, 3)] {
                let label = "beta \(ref.beta) at \(ranks) rank(s), micro-batches of \(micro)"
                let got = try harness(microBatchSize: micro).run("spin", ["beta": "\(ref.beta)", "iteration_steps": "100"], ranks: ranks)[0]
                XCTAssertEqual(got.loss, ref.loss, accuracy: 2e-6 * max(1, abs(ref.loss)), "\(label): loss")
                XCTAssertEqual(got.diagnostics["rewards/margins"] ?? .nan, ref.rewards_margins, accuracy: 1e-5, "\(label): margins")
                XCTAssertEqual(got.diagnostics["rewards/accuracies"] ?? .nan, ref.rewards_accuracies, accuracy: 1e-5, label)
                let expected = ref.grad.flatMap { $0 }
                let scale = expected.map(abs).max() ?? 0
                XCTAssertGreaterThan(scale, 1e-3, label)
                XCTAssertEqual(got.gradient.count, expected.count, "\(label): dL/dlogits entries")
                let worst = zip(got.gradient, expected).map { abs(Double($0) - $1) - (1e-5 * scale + 1e-4 * abs($1)) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst, 0, "\(label): dL/dlogits")
            }
        }
    }

    /// A new iteration starts at step 1 (iteration_steps 1): the opponent becomes the model
    /// itself, so every pair's loss is log 2.
    func testTheOpponentIsRefreshedAtEachIteration() throws {
        let got = try harness(microBatchSize: 4).run("spin", ["beta": "0.5", "iteration_steps": "1"])[0]
        XCTAssertEqual(got.loss, log(2), accuracy: 1e-7)
    }
}
