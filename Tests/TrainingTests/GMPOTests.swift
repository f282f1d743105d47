import Foundation
import XCTest
import TestSupport
@testable import Training

/// gmpo against TRL 1.16's own experimental `GMPOTrainer._compute_loss`
/// (`scripts/make-gmpo-references`, on the batch of grpo-reference.json: six rollouts, two groups,
/// prompts out of the loss, the sampler's log-probs, a reference model), through the real trainer
/// at several rank and micro-batch splits: TRL's default ε = 0.4, a narrow clip both ways, β > 0,
/// a generation's first step, the rollout temperature, and a rollout masked whole.
final class GMPOTests: XCTestCase {
    struct Fixture: Decodable {
        struct Case: Decodable {
            var args: [String: String]; var on_policy: Bool?; var loss: Double; var grad: [[Double]]; var figures: [String: Double]
            var value: Double?; var behaviour: [[Float]]?   // the tempered case
            var rollout: Int?                              // the truncated case
        }
        var configurations: [Case]
        var temperature: Case
        var truncated: Case
    }

    static let fixture: Fixture = referenceFixture("gmpo-reference.json")
    static let batch = GRPOReferenceTests.fixture

    func harness(_ c: Fixture.Case, truncated: Int? = nil, micro: Int) -> TrainerHarness {
        let f = Self.batch
        let examples = f.examples.enumerated().map { i, e in
            Example(ids: e.ids, lossMask: RolloutProducer.trainedMask(e.loss_mask, finish: i == truncated ? .length : .stop),
                    promptLength: e.loss_mask.firstIndex(of: 1) ?? 1, answer: nil, source: "ref:\(i)")
        }
        var h = TrainerHarness(examples: examples, positions: f.seq_len, vocab: f.vocab, current: f.logits.current.flatMap { $0 },
                               reference: f.logits.reference.flatMap { $0 }, microBatchSize: micro, totalSteps: 4)
        let advantages = f.examples.map(\.advantage), behaviour = c.behaviour ?? f.examples.map(\.behaviour)
        h.rolloutTemperature = c.value ?? 1
        let onPolicy = c.on_policy ?? false
        h.makeProducer = {
            let p = FixedRolloutProducer(examples: $0.examples, advantages: advantages, behaviour: behaviour)
            p.onPolicy = onPolicy
            return p
        }
        return h
    }

    func assertMatchesTRL(_ c: Fixture.Case, truncated: Int? = nil, ranks: Int, micro: Int, label: String) throws {
        let got = try harness(c, truncated: truncated, micro: micro).run("gmpo", c.args, ranks: ranks)[0]
        XCTAssertEqual(got.loss, c.loss, accuracy: 2e-6 * max(1, abs(c.loss)), "\(label): loss")
        assertGradientMatchesReference(got.gradient, c.grad, label)
        XCTAssertEqual(c.figures.count, c.args["beta"] == "0.0" ? 4 : 5, label)
        for (key, want) in c.figures {   // TRL's clip shares are float32
            XCTAssertEqual(got.diagnostics[key] ?? .nan, want, accuracy: key.hasPrefix("clip") ? 1e-6 : 1e-5 * max(1, abs(want)), "\(label): \(key)")
        }
    }

    func testLossGradientAndFiguresMatchTRLAtAnySplit() throws {
        XCTAssertEqual(Set(Self.fixture.configurations.map { $0.on_policy ?? false }), [false, true])
        for c in Self.fixture.configurations {
            for (ranks, micro) in [(1, 2), (1, 6), (3, 1), (2, 3)] {
                try assertMatchesTRL(c, ranks: ranks, micro: micro, label: "\(c.args) on-policy \(c.on_policy ?? false) at \(ranks) rank(s), micro-batches of \(micro)")
            }
        }
    }

    /// Log-probs, the reference's and the entropy of softmax(z/T) at the rollout temperature.
    func testAtTheRolloutTemperatureMatchesTRL() throws {
        let t = Self.fixture.temperature
        for (ranks, micro) in [(1, 6), (3, 1)] {
            try assertMatchesTRL(t, ranks: ranks, micro: micro, label: "T = \(t.value ?? 1) at \(ranks) rank(s)")
        }
    }

    /// A rollout masked by mask_truncated_completions counts in B with weight 1 (the term −A, constant).
    func testMaskedTruncatedRolloutCountsAsTRLs() throws {
        let t = Self.fixture.truncated
        for (ranks, micro) in [(1, 2), (2, 3)] {
            try assertMatchesTRL(t, truncated: t.rollout, ranks: ranks, micro: micro, label: "rollout \(t.rollout ?? -1) truncated at \(ranks) rank(s)")
        }
    }

    func testArgumentsAreTRLsAndBadOnesRefused() throws {
        let resolved = try ObjectiveRegistry.resolvedArguments(name: "gmpo", args: [:])
        XCTAssertEqual(resolved, ["epsilon": "0.4", "epsilon_high": "0.4", "beta": "0", "top_entropy_quantile": "1.0"])
        for (args, needle) in [(["epsilon": "-0.1"], "epsilon (log space) must be a finite number >= 0"),
                               (["beta": "-1"], "beta must be >= 0"),
                               (["loss_type": "grpo"], "loss_type")] {
            XCTAssertThrowsError(try ObjectiveRegistry.make(name: "gmpo", args: args)) {
                XCTAssertTrue("\($0)".contains(needle), "\(args): \($0)")
            }
        }
    }
}
