import Foundation
import XCTest
@testable import Models
@testable import TensorCore
@testable import Training

/// online-dpo (`OnlineDPOObjective`, `RankedPairs`): the ranking of each prompt's two rollouts
/// (TRL's `first >= second`, less `missing_eos_penalty` for one that did not stop), and the loss,
/// gradient and figures on ranked pairs against a transcription of TRL 1.16's
/// `OnlineDPOTrainer.training_step` (`scripts/make-dpo-reference`, "online"), at 1–3 ranks.
final class OnlineDPOTests: XCTestCase {
    struct Fixture: Decodable {
        struct Online: Decodable {
            var loss_type: String, beta: Double, loss: Double, grad: [[Double]]
            var objective_kl: Double, objective_non_score_reward: Double, objective_rlhf_reward: Double, objective_entropy: Double
        }
        var online: [Online]
    }

    static let fixture: Fixture = referenceFixture("dpo-reference.json")

    func rollout(_ ids: [Int32]) -> StepSequence {
        StepSequence(example: 0, origin: .rollout, ids: ids, lossMask: [0] + ids.dropFirst().map { _ in 1 }, promptLength: 1)
    }

    func testRankingFollowsTRL() {
        // Pairs: a clear winner; a tie (the first wins, as TRL's >=); a higher score that did not stop.
        var s = [rollout([5, 1, 9]), rollout([5, 2, 9]), rollout([5, 3, 9]), rollout([5, 4, 9]), rollout([5, 6, 7]), rollout([5, 8, 9])]
        let stopped = s.map { $0.ids.last == 9 }
        RankedPairs.rank(&s, scores: [1, 0.5, 0.3, 0.3, 2, 1], stopped: stopped, penalty: 1.5)
        XCTAssertEqual(s.map(\.pairRole), [.chosen, .rejected, .chosen, .rejected, .rejected, .chosen])
        XCTAssertEqual(s.map(\.advantage), [1, 0.5, 0.3, 0.3, 0.5, 1])
        var unpenalised = s
        RankedPairs.rank(&unpenalised, scores: [1, 0.5, 0.3, 0.3, 2, 1], stopped: stopped, penalty: nil)
        XCTAssertEqual(unpenalised[4].pairRole, .chosen, "without the penalty the higher score wins")
        RankedPairs.link(&s)
        XCTAssertEqual(s.map(\.pair), [1, 0, 3, 2, 5, 4])
        let m = Dictionary(uniqueKeysWithValues: RankedPairs.metrics(s, stopIds: [9]))
        XCTAssertEqual(m["objective/scores"]!, (1 + 0.5 + 0.3 + 0.3 + 0.5 + 1) / 6, accuracy: 1e-7)
        XCTAssertEqual(m["objective/scores_margin"]!, (0.5 + 0 + 0.5) / 3, accuracy: 1e-7)
        XCTAssertEqual(m["val/contain_eos_token"]!, 5.0 / 6, accuracy: 1e-12)
    }

    /// The loss and dL/dlogits within DPOTests' tolerances, the figures within 1e-5, at several
    /// splits; the harness's pairs are demonstrations, whose score (advantage) is 1.
    func testLossGradientAndFiguresMatchTRLsOnlineDPO() throws {
        XCTAssertEqual(Set(Self.fixture.online.map(\.loss_type)), ["sigmoid", "ipo"])
        for ref in Self.fixture.online {
            for (ranks, micro) in [(1, 8), (2, 3), (3, 2)] {
                var h = DPOTests.harness(microBatchSize: micro)
                h.linkPairs = true
                h.rolloutTemperature = 0.7   // samples only: the log-probs are the raw logits', as TRL's _forward
                let label = "online-dpo \(ref.loss_type) at \(ranks) rank(s), micro-batches of \(micro)"
                let got = try h.run("online-dpo", ["loss_type": ref.loss_type, "beta": "\(ref.beta)"], ranks: ranks)[0]
                XCTAssertEqual(got.loss, ref.loss, accuracy: 2e-6 * max(1, abs(ref.loss)), "\(label): loss")
                for (key, want) in [("objective/kl", ref.objective_kl), ("objective/non_score_reward", ref.objective_non_score_reward),
                                    ("objective/rlhf_reward", ref.objective_rlhf_reward), ("objective/entropy", ref.objective_entropy),
                                    ("beta", ref.beta)] {
                    XCTAssertEqual(got.diagnostics[key] ?? .nan, want, accuracy: 1e-5 * max(1, abs(want)), "\(label): \(key)")
                }
                assertGradientMatchesReference(got.gradient, ref.grad, label)
            }
        }
    }
}
