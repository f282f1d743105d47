import Foundation
import XCTest
@testable import Training

/// Every objective through the real trainer step against an independent PyTorch
/// implementation of the paper's formula (`scripts/make-objective-references`, autograd for
/// dL/dlogits): a multi-sequence batch with prompt tokens out of the loss, default arguments,
/// the old policy and the reference model differing from the current logits. The trainer runs
/// at one rank in three micro-batches and at three ranks (threads), so sharding, the statistics
/// pass and its gather, and the global normalisers are all on the path being compared.
final class ObjectiveReferenceTests: XCTestCase {
    struct Fixture: Decodable {
        struct Example: Decodable { var ids: [Int32]; var loss_mask: [UInt8] }
        struct Logits: Decodable { var current: [[Float]]; var reference: [[Float]]; var old: [[Float]] }
        struct Reference: Decodable { var name: String; var args: [String: String]; var loss: Double; var grad: [[Double]] }
        var vocab: Int, seq_len: Int, step: Int, total_steps: Int
        var examples: [Example]
        var logits: Logits
        var objectives: [Reference]
    }

    static let fixture: Fixture = referenceFixture("objective-references.json")

    var harness: TrainerHarness {
        let f = Self.fixture
        let examples = f.examples.enumerated().map { i, e in
            Example(fixture: e.ids, lossMask: e.loss_mask, source: "ref:\(i)")
        }
        return TrainerHarness(examples: examples, positions: f.seq_len, vocab: f.vocab, current: f.logits.current.flatMap { $0 },
                              reference: f.logits.reference.flatMap { $0 }, old: f.logits.old.flatMap { $0 },
                              microBatchSize: 2, totalSteps: f.total_steps)
    }

    func testFixtureCoversEveryObjective() {
        // Pair objectives (dpo, and spin: DPO against the opponent) have their own fixture of pairs
        // (DPOTests, SPINTests), rollout objectives theirs of rollouts (GRPOReferenceTests, SRFTReferenceTests),
        // superhf its own with the best-of-k selection (SuperHFReferenceTests).
        // uft and prefix-rft (rollouts continuing revealed prefixes): RevealedPrefixReferenceTests;
        // cpo and orpo against TRL's own functions (PreferenceObjectiveTests), online-dpo against
        // its training_step on DPOTests' pairs (OnlineDPOTests), tpo against TRL's own TPOTrainer loss on triples (TPOObjectiveTests), a2po against TRL's own A2POTrainer loss on rollouts (A2POTests), gkd against TRL's own divergence (GKDTests),
        // kto against TRL's own loss on labelled rows (KTOTests), rloo against TRL's own loss on
        // grpo's rollouts (RLOOTests), gmpo against TRL's own GMPOTrainer loss on them (GMPOTests), reward against TRL's own RewardTrainer.compute_loss (RewardObjectiveTests).
        XCTAssertEqual(Set(Self.fixture.objectives.map(\.name)), Set(ObjectiveRegistry.names).subtracting(["dpo", "spin", "grpo", "chord", "srft", "relift", "superhf"])
                           .subtracting(["uft", "prefix-rft", "cpo", "orpo", "online-dpo", "gkd", "kto", "rloo", "reward", "gmpo", "tpo", "a2po"]))
        XCTAssertEqual(Self.fixture.step, 1, "the harness reports step 1 (step 0 takes the old-policy snapshot)")
    }

    /// Loss within 2e-6 relative; each gradient entry within 1e-5 of the largest plus 1e-4 of
    /// itself (float32 trainer against a float64 reference: observed ≤ 5e-8 on losses and
    /// ≤ 1.5e-6 of the largest entry on gradients).
    func assertMatches(_ got: TrainerHarness.Result, _ ref: Fixture.Reference, _ label: String,
                       file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.loss, ref.loss, accuracy: 2e-6 * max(1, abs(ref.loss)), "\(label): loss", file: file, line: line)
        let expected = ref.grad.flatMap { $0 }
        XCTAssertEqual(got.gradient.count, expected.count, label, file: file, line: line)
        let scale = expected.map(abs).max() ?? 0
        XCTAssertGreaterThan(scale, 1e-3, "\(label): the reference gradient is all but zero", file: file, line: line)
        var worst = 0.0, at = -1
        for (i, (g, e)) in zip(got.gradient, expected).enumerated() {
            let excess = abs(Double(g) - e) - (1e-5 * scale + 1e-4 * abs(e))
            if excess > worst { worst = excess; at = i }
        }
        if at >= 0 {
            let V = Self.fixture.vocab
            XCTFail("\(label): dL/dlogits[row \(at / V), \(at % V)] = \(got.gradient[at]), reference \(expected[at])", file: file, line: line)
        }
    }

    func testDeterministicObjectivesMatchTheReferenceAtOneAndThreeRanks() throws {
        for ref in Self.fixture.objectives where ref.name != "otr" {
            for ranks in [1, 3] {
                let got = try harness.run(ref.name, ref.args, ranks: ranks)[0]
                assertMatches(got, ref, "\(ref.name) \(ref.args) at \(ranks) rank(s)")
            }
        }
    }

    /// OTR samples K tokens per position; the reference is the expectation over the draws.
    /// The trainer's loss and gradient averaged over 400 steps (fresh draws each step, logits
    /// unchanged at learning rate 0) must sit within 5 standard errors of it, entry by entry,
    /// plus three single draws' worth (1/(K·N) each) over the steps: on a confident row a
    /// wrong draw is a rare event whose sample variance can be zero.
    func testOTRAveragesToTheExpectedLossAndGradient() throws {
        let ref = try XCTUnwrap(Self.fixture.objectives.first { $0.name == "otr" })
        let runs = try harness.run("otr", steps: 1...400)
        let n = Double(runs.count)
        let lossTokens = Double(Self.fixture.examples.reduce(0) { $0 + $1.loss_mask.filter { $0 != 0 }.count })
        let rareEvents = 3 / (8 * lossTokens * n)
        func check(_ samples: [Double], _ expected: Double, _ what: String) -> Bool {
            let mean = samples.reduce(0, +) / n
            let variance = samples.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / (n - 1)
            let tolerance = 5 * (variance / n).squareRoot() + rareEvents
            if abs(mean - expected) > tolerance {
                XCTFail("otr \(what): mean of \(runs.count) steps \(mean), expected \(expected) (±\(tolerance))")
                return false
            }
            return true
        }
        _ = check(runs.map(\.loss), ref.loss, "loss")
        for (i, e) in ref.grad.flatMap({ $0 }).enumerated() {
            if !check(runs.map { Double($0.gradient[i]) }, e, "dL/dlogits[\(i)]") { break }
        }
    }
}
