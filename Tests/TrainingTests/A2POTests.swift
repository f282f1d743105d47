import Foundation
import XCTest
@testable import Models
@testable import TensorCore
@testable import Training

/// a2po (A*-PO, `A2POObjective`) against TRL 1.16's own `A2POTrainer.compute_loss` and
/// `_get_sequence_logps` with autograd (`scripts/make-a2po-references`, on the rollouts of
/// grpo-reference.json with its reference logits), through the real trainer at several rank and
/// micro-batch splits; stage 1's V* against TRL's expression.
final class A2POTests: XCTestCase {
    struct Fixture: Decodable {
        struct Configuration: Decodable { var beta2: Double; var loss: Double; var grad: [[Double]]; var figures: [String: Double] }
        struct ValueCase: Decodable { var rewards: [Double]; var beta1: Double; var v_star: Double; var all_incorrect: Bool }
        /// TRL's own `_estimate_optimal_values` on one prompt per row of `samples`: V* and the prompts kept.
        struct Stage1: Decodable { var samples: [[Double]]; var beta1: Double; var v_star: [Double]; var kept: [Int] }
        var rewards: [Double], v_star: [Double]
        var configurations: [Configuration]
        var values: [ValueCase]
        var stage1: [Stage1]
    }

    static let fixture: Fixture = referenceFixture("a2po-reference.json")

    /// The grpo batch's rollouts with their reference logits, each advantage r − V* as the producer forms it.
    func harness(micro: Int) -> TrainerHarness {
        let f = GRPOReferenceTests.fixture
        let examples = f.examples.enumerated().map { i, e in
            Example(ids: e.ids, lossMask: e.loss_mask, promptLength: e.loss_mask.firstIndex(of: 1) ?? 1, answer: nil, source: "ref:\(i)")
        }
        var h = TrainerHarness(examples: examples, positions: f.seq_len, vocab: f.vocab, current: f.logits.current.flatMap { $0 },
                               reference: f.logits.reference.flatMap { $0 }, microBatchSize: micro, totalSteps: 4)
        let advantages = zip(Self.fixture.rewards, Self.fixture.v_star).map { Float($0 - Double(Float($1))) }
        let behaviour = f.examples.map(\.behaviour)
        h.makeProducer = { FixedRolloutProducer(examples: $0.examples, advantages: advantages, behaviour: behaviour) }
        return h
    }

    func testLossGradientAndFiguresMatchTRLAtAnySplit() throws {
        XCTAssertEqual(Self.fixture.configurations.count, 3)
        for c in Self.fixture.configurations {
            for (ranks, micro) in [(1, 6), (1, 1), (2, 3), (3, 2)] {
                let label = "a2po beta2 \(c.beta2) at \(ranks) rank(s), micro-batches of \(micro)"
                let got = try harness(micro: micro).run("a2po", ["beta2": "\(c.beta2)"], ranks: ranks)[0]
                XCTAssertEqual(got.loss, c.loss, accuracy: 2e-6 * max(1, abs(c.loss)), "\(label): loss")
                assertGradientMatchesReference(got.gradient, c.grad, label)
                XCTAssertEqual(Set(c.figures.keys), ["implicit_reward", "advantage"], label)
                for (key, want) in c.figures {
                    XCTAssertEqual(got.diagnostics[key] ?? .nan, want, accuracy: 1e-6 * max(1, abs(want)), "\(label): \(key)")
                }
            }
        }
    }

    /// TRL's A2POTrainer takes the log-probs of the raw logits: a run sampling at another
    /// temperature trains on the same loss (grpo's would divide the logits by it).
    func testTheLogProbsAreOfTheRawLogits() throws {
        let c = Self.fixture.configurations[1]
        var h = harness(micro: 2)
        h.rolloutTemperature = 0.7
        let got = try h.run("a2po", ["beta2": "\(c.beta2)"])[0]
        XCTAssertEqual(got.loss, c.loss, accuracy: 2e-6 * max(1, abs(c.loss)))
        assertGradientMatchesReference(got.gradient, c.grad, "at rollout temperature 0.7")
    }

    /// V* = β1·(log Σ exp(r/β1) − log N), and the all-incorrect rule (the samples' sum is 0):
    /// against TRL's stage 1 itself (its V* are float32) and its expression on more reward sets.
    func testOptimalValueIsTRLs() {
        XCTAssertEqual(Self.fixture.stage1.count, 2)
        for s in Self.fixture.stage1 {
            for (i, want) in s.v_star.enumerated() {
                XCTAssertEqual(OptimalValues.value(s.samples[i][...], beta1: s.beta1), want, accuracy: 1e-6 * max(1, abs(want)), "\(s.samples[i])")
            }
            XCTAssertEqual(s.samples.indices.filter { !OptimalValues.allIncorrect(s.samples[$0][...]) }, s.kept, "\(s.samples)")
        }
        XCTAssertTrue(Self.fixture.values.contains { $0.all_incorrect } && Self.fixture.values.contains { $0.beta1 < 0.01 })
        for c in Self.fixture.values {
            XCTAssertEqual(OptimalValues.value(c.rewards[...], beta1: c.beta1), c.v_star, accuracy: 1e-12 * max(1, abs(c.v_star)), "\(c.rewards) β1 \(c.beta1)")
            XCTAssertEqual(OptimalValues.allIncorrect(c.rewards[...]), c.all_incorrect, "\(c.rewards)")
        }
        for (samples, want) in zip([[1.0, 0, 0, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 1]], Self.fixture.v_star) {
            XCTAssertEqual(OptimalValues.value(samples[...], beta1: 0.5), want, accuracy: 1e-12)
        }
    }

    func testArguments() throws {
        let o = try XCTUnwrap(try ObjectiveRegistry.make(name: "a2po", args: [:]) as? A2POObjective)
        XCTAssertEqual([o.beta1, o.beta2], [0.5, Double(Float(1e-3))])
        XCTAssertEqual(o.valueSamples, 8)
        XCTAssertTrue(o.filterAllIncorrect)
        XCTAssertEqual(o.requirements.rolloutsPerPrompt, 1)
        XCTAssertTrue(o.requirements.referenceModel && o.requirements.referenceInStep && o.requirements.rollouts)
        for (args, why) in [(["beta1": "0"], "beta1 must be > 0"), (["beta2": "-1"], "beta2 must be > 0"),
                            (["num_value_samples": "0"], "num_value_samples must be an integer in 1…4096"),
                            (["filter_all_incorrect": "yes"], "filter_all_incorrect must be true or false"), (["beta": "0.1"], "unknown argument(s) beta")] {
            XCTAssertThrowsError(try ObjectiveRegistry.make(name: "a2po", args: args)) { XCTAssertTrue("\($0)".contains(why), "\(args): \($0)") }
        }
    }
}
