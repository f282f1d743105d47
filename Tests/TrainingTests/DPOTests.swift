import Foundation
import XCTest
@testable import Models
@testable import TensorCore
@testable import Training

/// DPO (`DPOObjective`, `PairProducer`, pair data) through the real trainer: against an
/// independent PyTorch implementation (`scripts/make-dpo-reference`, autograd for dL/dlogits),
/// at one and several ranks and micro-batch sizes; pairs never split between ranks or
/// micro-batches; packed and padded micro-batches giving the same loss.
final class DPOTests: XCTestCase {
    struct Fixture: Decodable {
        struct Example: Decodable { var ids: [Int32]; var loss_mask: [UInt8] }
        struct Logits: Decodable { var current: [[Float]]; var reference: [[Float]] }
        struct Reference: Decodable {
            var loss_type: String, loss_weights: [Double]?, beta: Double, label_smoothing: Double, discopop_tau: Double
            var f_divergence_type: String, f_alpha_divergence_coef: Double, ld_alpha: Double?, use_weighting: Bool
            var loss: Double, grad: [[Double]]
            var rewards_chosen: Double, rewards_rejected: Double, rewards_margins: Double, rewards_accuracies: Double
            var logps_chosen: Double, logps_rejected: Double, logits_chosen: Double, logits_rejected: Double
            var mean_token_accuracy: Double, entropy: Double
        }
        var vocab: Int, seq_len: Int
        var examples: [Example]
        var logits: Logits
        var references: [Reference]
    }

    static let fixture: Fixture = referenceFixture("dpo-reference.json")

    static func harness(microBatchSize: Int) -> TrainerHarness {
        let f = Self.fixture
        return pairHarness(f.examples, seqLen: f.seq_len, vocab: f.vocab, current: f.logits.current, reference: f.logits.reference,
                           microBatchSize: microBatchSize)
    }

    /// The real trainer over a pair fixture's sequences (chosen 2i, rejected 2i + 1) and logits.
    static func pairHarness(_ pairs: [Fixture.Example], seqLen: Int, vocab: Int, current: [[Float]], reference: [[Float]]?,
                            microBatchSize: Int) -> TrainerHarness {
        let examples = pairs.enumerated().map { i, e in Example(fixture: e.ids, lossMask: e.loss_mask, source: "pair:\(i / 2)") }
        return TrainerHarness(examples: examples, positions: seqLen, vocab: vocab, current: current.flatMap { $0 },
                              reference: reference?.flatMap { $0 }, microBatchSize: microBatchSize)
    }

    /// Loss within 2e-6 relative, reward means within 1e-5, each gradient entry within 1e-5 of
    /// the largest plus 1e-4 of itself (float32 trainer against a float64 reference), for the
    /// sigmoid loss at two β and each of TRL's other pairwise loss types (DPOLoss.swift).
    func testLossGradientAndRewardsMatchTheReference() throws {
        XCTAssertEqual(Set(Self.fixture.references.flatMap { $0.loss_type.split(separator: ",").map(String.init) }),
                       Set(DPOLoss.allCases.map(\.rawValue)), "a reference per loss type")
        XCTAssertGreaterThanOrEqual(Self.fixture.references.filter { $0.loss_weights != nil }.count, 3, "and lists of types with weights")
        XCTAssertEqual(Set(Self.fixture.references.map(\.f_divergence_type)), Set(DPODivergence.allCases.map(\.rawValue)), "and per divergence")
        XCTAssertEqual(Set(Self.fixture.references.compactMap(\.ld_alpha)), [0.5, 0], "and ld_alpha")
        XCTAssertEqual(Self.fixture.references.filter(\.use_weighting).count, 2, "and WPO's weights")
        for ref in Self.fixture.references {
            var args = ["beta": "\(ref.beta)"]
            if ref.loss_type != "sigmoid" { args["loss_type"] = ref.loss_type }
            let types = ref.loss_type.split(separator: ",")
            if types.contains("robust") || types.contains("exo_pair") { args["label_smoothing"] = "\(ref.label_smoothing)" }
            if types.contains("discopop") { args["discopop_tau"] = "\(ref.discopop_tau)" }
            if let w = ref.loss_weights { args["loss_weights"] = w.map { "\($0)" }.joined(separator: ",") }
            if ref.f_divergence_type != "reverse_kl" { args["f_divergence_type"] = ref.f_divergence_type }
            if ref.f_divergence_type == "alpha_divergence" { args["f_alpha_divergence_coef"] = "\(ref.f_alpha_divergence_coef)" }
            if let ld = ref.ld_alpha { args["ld_alpha"] = "\(ld)" }
            if ref.use_weighting { args["use_weighting"] = "true" }
            for (ranks, micro) in [(1, 8), (1, 1), (2, 3), (3, 2)] {
                let label = "\(ref.loss_type), beta \(ref.beta) at \(ranks) rank(s), micro-batches of \(micro)"
                let got = try Self.harness(microBatchSize: micro).run("dpo", args, ranks: ranks)[0]
                XCTAssertEqual(got.loss, ref.loss, accuracy: 2e-6 * max(1, abs(ref.loss)), "\(label): loss")
                for (key, want) in [("rewards/chosen", ref.rewards_chosen), ("rewards/rejected", ref.rewards_rejected),
                                    ("rewards/margins", ref.rewards_margins), ("rewards/accuracies", ref.rewards_accuracies)] {
                    XCTAssertEqual(got.diagnostics[key] ?? .nan, want, accuracy: 1e-5, "\(label): \(key)")
                }
                let expected = ref.grad.flatMap { $0 }
                let scale = expected.map(abs).max() ?? 0
                XCTAssertGreaterThan(scale, 1e-3, label)
                XCTAssertEqual(got.gradient.count, expected.count, "\(label): dL/dlogits entries")
                let worst = zip(got.gradient, expected).map { abs(Double($0) - $1) - (1e-5 * scale + 1e-4 * abs($1)) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst, 0, "\(label): dL/dlogits")
            }
        }
    }

    /// With the same policy and and reference, every pair's loss is log 2 (σ(0) = ½), and the
    /// gradient of a pair is ±β/2P·(onehot − softmax): closed form, no reference needed.
    func testEqualPolicyAndReferenceGiveLogTwo() throws {
        var h = Self.harness(microBatchSize: 2)
        h.reference = h.current
        let got = try h.run("dpo", ["beta": "0.3"])[0]
        XCTAssertEqual(got.loss, log(2), accuracy: 1e-7)
        XCTAssertEqual(got.diagnostics["rewards/margins"] ?? .nan, 0, accuracy: 1e-7)
        // Position 0 of pair 0's chosen sequence, if it is a loss row: −(β/2)/P·(onehot − p).
        let f = Self.fixture, V = f.vocab, pairs = Double(f.examples.count / 2)
        let e = f.examples[0]
        XCTAssertGreaterThan(e.loss_mask.filter { $0 == 1 }.count, 0)
        for t in 0..<(e.ids.count - 1) where e.loss_mask[t + 1] == 1 {
            let z = f.logits.current[t].map(Double.init), lse = log(z.map(exp).reduce(0, +))
            for v in 0..<V {
                let want = -(0.3 / 2) / pairs * ((v == Int(e.ids[t + 1]) ? 1 : 0) - exp(z[v] - lse))
                XCTAssertEqual(Double(Array(h.gradient(got, sequence: 0, position: t))[v]), want, accuracy: 1e-6, "position \(t), token \(v)")
            }
        }
    }

    /// Two answers of the same tokens are one answer (online-dpo samples them often from a
    /// peaked policy): no margin and no accuracy, as TRL logs them, whatever the last bits of
    /// their log-probs — in the trainer the rows' places in the batch moved them, and the
    /// accuracy counted the rounding. On the objective's own input (the trainer harness's table
    /// model reads identical sequences from one row): pair 0's rejected made the chosen's
    /// tokens and logits, then the chosen's first target logit raised by 1e-3.
    func testIdenticalAnswersHaveNoMarginAndNoAccuracy() throws {
        func batch(nudge: Float) -> ObjectiveTestBatch {
            let b = ObjectiveTestBatch.randomPairs(), V = b.vocab
            for r in 0..<3 {   // sequence 1 (rows 3–5) := sequence 0 (rows 0–2)
                b.targets[3 + r] = b.targets[r]; b.mask[3 + r] = b.mask[r]
                for v in 0..<V { b.logits[(3 + r) * V + v] = b.logits[r * V + v]; b.reference![(3 + r) * V + v] = b.reference![r * V + v] }
            }
            b.sequences[1].ids = b.sequences[0].ids; b.sequences[1].lossMask = b.sequences[0].lossMask
            XCTAssertEqual(b.mask[0], 1)
            b.logits[Int(b.targets[0])] += nudge
            return b
        }
        let objective = try ObjectiveRegistry.make(name: "dpo", args: ["beta": "0.1"])
        func diagnostics(_ b: ObjectiveTestBatch) -> [String: Double] {
            var g = [Float](repeating: 0, count: b.rows * b.vocab)
            return g.withUnsafeMutableBufferPointer { objective.lossAndGradient(b.input(0..<b.rows, b.context()), dlogits: $0.baseAddress!) }.diagnostics
        }
        let equal = diagnostics(batch(nudge: 0)), nudged = diagnostics(batch(nudge: 1e-3))
        XCTAssertNotEqual(nudged["logps/chosen"], equal["logps/chosen"], "the nudge moves the chosen log-prob")
        for key in ["rewards/accuracies", "rewards/margins"] {
            XCTAssertEqual(nudged[key] ?? .nan, equal[key] ?? .nan, accuracy: 1e-12, key)
        }
    }
}
