import Foundation
import XCTest
import TensorCore
@testable import Training

/// UFT (arXiv 2505.16984) and Prefix-RFT (arXiv 2507.01679) against their losses written
/// independently in PyTorch (`scripts/make-revealed-prefix-references`, autograd for dL/dlogits),
/// through the real trainer at several splits over ranks and micro-batches, on the GRPO reference
/// batch with two hybrid rollouts (their first completion tokens revealed); and the reveal
/// schedules (UFT's hint probability and Python-rounded segment lengths, Prefix-RFT's cosine lower
/// bound and prefix length) against the same script.
final class RevealedPrefixReferenceTests: XCTestCase {
    struct Fixture: Decodable {
        struct Example: Decodable {
            var ids: [Int32]; var loss_mask: [UInt8]; var behaviour: [Float]; var advantage: Float; var prompt_length: Int
        }
        struct Logits: Decodable { var current: [[Float]]; var reference: [[Float]] }
        struct Configuration: Decodable {
            var args: [String: String]; var loss: Double; var grad: [[Double]]
            var entropy_threshold: Double?; var prefix_kept: Double?
        }
        struct Probability: Decodable { var step: Int; var p: Double }
        struct HintLengths: Decodable { var answer_tokens: Int; var segments: Int; var lengths: [Int] }
        struct Low: Decodable { var step: Int; var low: Double }
        struct PrefixLength: Decodable { var answer_tokens: Int; var fraction: Double; var min_prefix: Int; var length: Int }
        var vocab: Int, seq_len: Int, max_completion_length: Int
        var examples: [Example]
        var logits: Logits
        var uft: [Configuration], prefix_rft: [Configuration]
        var uft_probabilities: [Probability], uft_hint_lengths: [HintLengths]
        var prefix_lows: [Low], prefix_lengths: [PrefixLength]
    }

    static let fixture: Fixture = referenceFixture("revealed-prefix-reference.json")

    func testUFTHintScheduleMatchesReference() throws {
        let uft = try XCTUnwrap(try makeObjective("uft") as? UFTObjective)
        for c in Self.fixture.uft_probabilities {
            XCTAssertEqual(uft.hintProbability(step: c.step), c.p, accuracy: 1e-12, "p(\(c.step))")
        }
        for c in Self.fixture.uft_hint_lengths {
            let num = min(c.segments, c.answer_tokens)
            XCTAssertEqual((0...num).map { UFTObjective.hintLength(shown: $0, segments: num, answerTokens: c.answer_tokens) }, c.lengths,
                           "\(c.answer_tokens) answer tokens in \(c.segments) segments")
        }
    }

    func testPrefixRFTScheduleMatchesReference() throws {
        let o = try XCTUnwrap(try makeObjective("prefix-rft", ["decay_steps": "200"]) as? PrefixRFTObjective)
        for c in Self.fixture.prefix_lows {
            XCTAssertEqual(o.low(step: c.step), c.low, accuracy: 1e-12, "low(\(c.step))")
        }
        for c in Self.fixture.prefix_lengths {
            XCTAssertEqual(PrefixRFTObjective.prefixLength(fraction: c.fraction, answerTokens: c.answer_tokens, minPrefix: c.min_prefix),
                           c.length, "l = \(c.fraction) of \(c.answer_tokens), min \(c.min_prefix)")
        }
    }

    func testUFTLossAndGradientMatchReferenceAtAnySplit() throws {
        try assertMatches("uft", Self.fixture.uft)
    }

    func testPrefixRFTLossAndGradientMatchReferenceAtAnySplit() throws {
        try assertMatches("prefix-rft", Self.fixture.prefix_rft)
    }

    func assertMatches(_ name: String, _ configurations: [Fixture.Configuration]) throws {
        let f = Self.fixture
        let examples = f.examples.enumerated().map { i, e in
            Example(ids: e.ids, lossMask: e.loss_mask, promptLength: e.prompt_length, answer: nil, source: "ref:\(i)")
        }
        let origins = f.examples.map { $0.prompt_length > ($0.loss_mask.firstIndex(of: 1) ?? 0) ? SequenceOrigin.prefixRollout : .rollout }
        XCTAssertEqual(origins.filter { $0 == .prefixRollout }.count, 2)
        let advantages = f.examples.map(\.advantage), behaviour = f.examples.map(\.behaviour)
        for c in configurations {
            for (ranks, micro) in [(1, 2), (1, 6), (3, 1), (2, 3)] {
                var h = TrainerHarness(examples: examples, positions: f.seq_len, vocab: f.vocab, current: f.logits.current.flatMap { $0 },
                                       reference: f.logits.reference.flatMap { $0 }, microBatchSize: micro, totalSteps: 4)
                h.makeProducer = { FixedRolloutProducer(examples: $0.examples, advantages: advantages, behaviour: behaviour, origins: origins) }
                h.configureObjective = { ($0 as? PrefixRFTObjective)?.maxCompletionLength = f.max_completion_length }
                let got = try h.run(name, c.args, ranks: ranks)[0]
                let label = "\(name) \(c.args) at \(ranks) rank(s), micro-batches of \(micro)"
                XCTAssertEqual(got.loss, c.loss, accuracy: 2e-6 * max(1, abs(c.loss)), "\(label): loss")
                let expected = c.grad.flatMap { $0 }
                let scale = expected.map(abs).max() ?? 0
                XCTAssertGreaterThan(scale, 1e-3, label)
                XCTAssertEqual(got.gradient.count, expected.count, "\(label): dL/dlogits entries")
                var worst = 0.0
                for (g, e) in zip(got.gradient, expected) { worst = max(worst, abs(Double(g) - e) - (1e-5 * scale + 1e-4 * abs(e))) }
                XCTAssertLessThanOrEqual(worst, 0, "\(label): dL/dlogits")
                if let tau = c.entropy_threshold { XCTAssertEqual(got.diagnostics["entropy_threshold"] ?? .nan, tau, accuracy: 1e-6, label) }
                if let kept = c.prefix_kept { XCTAssertEqual(got.diagnostics["prefix_kept"] ?? .nan, kept, accuracy: 1e-9, label) }
            }
        }
    }
}
