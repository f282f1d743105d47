import Foundation
import XCTest
@testable import Models
@testable import TensorCore
@testable import Training

/// cpo and orpo (`CPOObjective`, `ORPOObjective`: preference pairs, no reference model) through
/// the real trainer, against TRL 1.16's own `CPOTrainer.cpo_loss` / `ORPOTrainer.odds_ratio_loss`
/// and `get_batch_logps` with autograd for dL/dlogits (`scripts/make-preference-references`), at
/// one and several ranks and micro-batch sizes, on DPOTests' batch.
final class PreferenceObjectiveTests: XCTestCase {
    struct Fixture: Decodable {
        struct Reference: Decodable {
            var objective: String, beta: Double
            var loss_type: String?, label_smoothing: Double?, cpo_alpha: Double?, simpo_gamma: Double?, alpha: Double?
            var loss: Double, grad: [[Double]]
            var rewards_chosen: Double, rewards_rejected: Double, rewards_margins: Double, rewards_accuracies: Double
            var logps_chosen: Double, logps_rejected: Double, nll_loss: Double?
            var log_odds_ratio: Double?, log_odds_chosen: Double?
        }
        var vocab: Int, seq_len: Int
        var examples: [DPOTests.Fixture.Example]
        var logits: [[Float]]
        var references: [Reference]
    }

    static let fixture: Fixture = referenceFixture("preference-reference.json")

    static func harness(microBatchSize: Int) -> TrainerHarness {
        let f = Self.fixture
        return DPOTests.pairHarness(f.examples, seqLen: f.seq_len, vocab: f.vocab, current: f.logits, reference: nil, microBatchSize: microBatchSize)
    }

    static func arguments(_ ref: Fixture.Reference) -> [String: String] {
        var args = ["beta": "\(ref.beta)"]
        guard ref.objective == "cpo" else { return args }
        args["loss_type"] = ref.loss_type!
        args["cpo_alpha"] = "\(ref.cpo_alpha!)"
        args["alpha"] = "\(ref.alpha!)"
        if ["sigmoid", "simpo"].contains(ref.loss_type!) { args["label_smoothing"] = "\(ref.label_smoothing!)" }
        if ref.loss_type == "simpo" { args["simpo_gamma"] = "\(ref.simpo_gamma!)" }
        return args
    }

    /// Loss within 2e-6 relative, figures within 1e-5, each gradient entry within 1e-5 of the
    /// largest plus 1e-4 of itself (float32 trainer against float64 TRL code).
    func testLossGradientAndFiguresMatchTRL() throws {
        let refs = Self.fixture.references
        XCTAssertEqual(Set(refs.compactMap(\.loss_type)), Set(CPOObjective.LossType.allCases.map(\.rawValue)), "a reference per cpo loss type")
        XCTAssertTrue(refs.contains { $0.objective == "orpo" } && refs.contains { ($0.alpha ?? 0) != 0 }, "orpo and AlphaPO")
        for ref in refs {
            let args = Self.arguments(ref)
            for (ranks, micro) in [(1, 8), (1, 1), (2, 3), (3, 2)] {
                let label = "\(ref.objective) \(args) at \(ranks) rank(s), micro-batches of \(micro)"
                let got = try Self.harness(microBatchSize: micro).run(ref.objective, args, ranks: ranks)[0]
                XCTAssertEqual(got.loss, ref.loss, accuracy: 2e-6 * max(1, abs(ref.loss)), "\(label): loss")
                var figures = [("rewards/chosen", ref.rewards_chosen), ("rewards/rejected", ref.rewards_rejected),
                               ("rewards/margins", ref.rewards_margins), ("rewards/accuracies", ref.rewards_accuracies),
                               ("logps/chosen", ref.logps_chosen), ("logps/rejected", ref.logps_rejected)]
                if let n = ref.nll_loss { figures.append(("nll_loss", n)) }
                if let o = ref.log_odds_ratio, let c = ref.log_odds_chosen { figures += [("log_odds_ratio", o), ("log_odds_chosen", c)] }
                for (key, want) in figures {
                    XCTAssertEqual(got.diagnostics[key] ?? .nan, want, accuracy: 1e-5 * max(1, abs(want)), "\(label): \(key)")
                }
                assertGradientMatchesReference(got.gradient, ref.grad, label)
            }
        }
    }

    /// A chosen answer the model is certain of (its mean log-prob rounds to 0 in float32) gave
    /// infinite odds and a 0/0 gradient (a review): the loss and gradient stay finite.
    func testORPOStaysFiniteOnACertainAnswer() throws {
        let batch = ObjectiveTestBatch.randomPairs()
        for r in 0..<3 where batch.mask[r] != 0 { batch.logits[r * batch.vocab + Int(batch.targets[r])] = 200 }   // sequence 0: chosen
        // The objective itself (the trainer would skip a step whose gradient is not finite).
        let objective = try makeObjective("orpo")
        let context = batch.prepare(objective, context: batch.context())
        var grad = [Float](repeating: 0, count: batch.rows * batch.vocab)
        let result = grad.withUnsafeMutableBufferPointer { objective.lossAndGradient(batch.input(0..<batch.rows, context), dlogits: $0.baseAddress!) }
        XCTAssertTrue(result.loss.isFinite, "\(result.loss)")
        XCTAssertTrue(grad.allSatisfy(\.isFinite), "\(grad)")
        XCTAssertTrue(grad.contains { $0 != 0 }, "the NLL term still trains")
    }

    /// TRL's `alphapo` shorthand is simpo with cpo_alpha 0: the same loss and gradient, and the
    /// same resolved arguments (a checkpoint of one spelling resumes under the other).
    func testAlphaPOShorthandIsSimPOWithoutNLL() throws {
        XCTAssertEqual(try ObjectiveRegistry.resolvedArguments(name: "cpo", args: ["loss_type": "alphapo", "alpha": "0.25"]),
                       try ObjectiveRegistry.resolvedArguments(name: "cpo", args: ["loss_type": "simpo", "cpo_alpha": "0", "alpha": "0.25"]))
        XCTAssertNoThrow(try ObjectiveRegistry.make(name: "cpo", args: ["loss_type": "alphapo", "cpo_alpha": "0"]))
        let h = Self.harness(microBatchSize: 2)
        let a = try h.run("cpo", ["loss_type": "alphapo", "alpha": "0.25", "beta": "2"])[0]
        let b = try h.run("cpo", ["loss_type": "simpo", "cpo_alpha": "0", "alpha": "0.25", "beta": "2"])[0]
        XCTAssertEqual(a.loss, b.loss)
        XCTAssertEqual(a.gradient, b.gradient)
    }
}
