import Foundation
import XCTest
@testable import Training

/// SRFT (arXiv 2506.19767 §4) against the paper's formulas written independently in PyTorch
/// (`scripts/make-srft-references`, autograd for dL/dlogits): the entropy-aware weights from the
/// step batch's token-mean entropy, the SFT and RL terms of the demonstrations and the
/// split of the rollouts into correct (reward ≥ 1, pulled up by w_RL) and not (pushed down; the
/// fixture's rewards 0.5 and 0.25 are graded, and one rollout sits at its group's mean), through the real trainer at several splits over
/// ranks and micro-batches (H and the per-kind token counts are global); and the group
/// advantages with each prompt's demonstration in its group.
final class SRFTReferenceTests: XCTestCase {
    struct Fixture: Decodable {
        struct AdvantageCase: Decodable {
            var rollouts: [Double]; var demonstrations: [Double]; var group_size: Int
            var expected: [String: [String: [Double]]]
        }
        struct Example: Decodable { var ids: [Int32]; var loss_mask: [UInt8]; var behaviour: [Float]; var advantage: Float; var reward: Float }
        struct Configuration: Decodable { var args: [String: String]; var loss: Double; var grad: [[Double]]; var w_sft: Double; var w_rl: Double }
        var vocab: Int, seq_len: Int
        var advantages: [AdvantageCase]
        var examples: [Example]
        var logits: [[Float]]
        var expert: [Bool]
        var configurations: [Configuration]
    }

    static let fixture: Fixture = referenceFixture("srft-reference.json")

    func testGroupedAdvantagesMatchReference() {
        for c in Self.fixture.advantages {
            for scaling in RewardScaling.allCases {
                let got = GroupedDemonstrations.advantages(rollouts: c.rollouts, demonstrations: c.demonstrations,
                                                           groupSize: c.group_size, scaling: scaling)
                let want = c.expected[scaling.rawValue]!
                XCTAssertEqual(got.rollouts.count, want["rollouts"]!.count, "\(c.rollouts) \(scaling): rollout advantages")
                XCTAssertEqual(got.demonstrations.count, want["demonstrations"]!.count, "\(c.demonstrations) \(scaling): demonstration advantages")
                for (g, w) in zip(got.rollouts + got.demonstrations, want["rollouts"]! + want["demonstrations"]!) {
                    XCTAssertEqual(Double(g), w, accuracy: 1e-6 * max(1, abs(w)), "\(c.rollouts) \(c.demonstrations) \(scaling)")
                }
            }
        }
    }

    func testLossAndGradientMatchReferenceAtAnySplit() throws {
        let f = Self.fixture
        let examples = f.examples.enumerated().map { i, e in
            Example(fixture: e.ids, lossMask: e.loss_mask, source: "ref:\(i)")
        }
        let origins = f.expert.map { $0 ? SequenceOrigin.demonstration : .rollout }
        let advantages = f.examples.map(\.advantage), behaviour = f.examples.map(\.behaviour)
        for c in f.configurations {
            for (ranks, micro) in [(1, 2), (1, 6), (3, 1), (2, 3)] {
                let logits = f.logits.flatMap { $0 }
                var h = TrainerHarness(examples: examples, positions: f.seq_len, vocab: f.vocab, current: logits,
                                       reference: logits, microBatchSize: micro, totalSteps: 4)
                h.makeProducer = { FixedRolloutProducer(examples: $0.examples, advantages: advantages, behaviour: behaviour, origins: origins,
                                                       rewards: f.examples.map(\.reward)) }
                let got = try h.run("srft", c.args, ranks: ranks)[0]
                let label = "srft \(c.args) at \(ranks) rank(s), micro-batches of \(micro)"
                XCTAssertEqual(got.loss, c.loss, accuracy: 2e-6 * max(1, abs(c.loss)), "\(label): loss")
                assertGradientMatchesReference(got.gradient, c.grad, label)
                XCTAssertEqual(got.diagnostics["w_sft"] ?? .nan, c.w_sft, accuracy: 1e-6, label)
                XCTAssertEqual(got.diagnostics["w_rl"] ?? .nan, c.w_rl, accuracy: 1e-6, label)
            }
        }
    }
}
