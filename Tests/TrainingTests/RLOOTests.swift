import Distributed
import Foundation
import XCTest
import Models
import TensorCore
import TestSupport
@testable import Training

/// rloo against TRL 1.16's own `RLOOTrainer._compute_loss` (`scripts/make-rloo-references`, on
/// the batch of grpo-reference.json: six rollouts, two groups, prompts out of the loss), through
/// the real trainer at several rank and micro-batch splits; its advantages against TRL's
/// formula; the KL penalty's sums against a reference forward computed here.
final class RLOOTests: XCTestCase {
    struct Fixture: Decodable {
        struct Configuration: Decodable {
            var args: [String: String]; var on_policy: Bool; var loss: Double; var grad: [[Double]]; var figures: [String: Double]
        }
        struct Tempered: Decodable { var value: Double; var behaviour: [[Float]]; var loss: Double; var grad: [[Double]]; var figures: [String: Double] }
        struct Truncated: Decodable { var rollout: Int; var loss: Double; var grad: [[Double]]; var figures: [String: Double] }
        struct AdvantageCase: Decodable {
            var rewards: [Double]; var kl: [Double]; var beta: Double; var group_size: Int; var normalize: Bool; var expected: [Double]
            var clip: [Double]?   // reward_clip_range
        }
        var configurations: [Configuration]
        var temperature: Tempered
        var truncated: Truncated
        var advantages: [AdvantageCase]
    }

    static let fixture: Fixture = referenceFixture("rloo-reference.json")
    static let batch = GRPOReferenceTests.fixture

    /// A group of equal penalised rewards gets exactly 0 (r − (Σ − r)/(G − 1), Σ summed left to right
    /// in Double, leaves 2e-16 on eight rewards of 1.1), the other group its leave-one-out values.
    func testEqualRewardsGiveExactlyZero() {
        let rewards = [Double](repeating: 1.1, count: 8) + [1.1, 0, 0, 1, 0.1, 1.1, 0, 0]
        let a = LeaveOneOutAdvantages(rewards: rewards, kl: rewards.map { _ in 0 }, tokens: rewards.map { _ in 1 }, beta: 0.05,
                                      groupSize: 8, normalize: false)
        XCTAssertEqual(Array(a.advantages[0..<8]), [Float](repeating: 0, count: 8))
        XCTAssertEqual(Double(a.advantages[8]), 1.1 - 2.2 / 7, accuracy: 1e-7)
    }

    /// Scoring in fixed chunks (one right-padded forward each) gives each candidate's own
    /// forward's score, and the same bits at 1, 2 and 3 ranks: 7 candidates of different lengths
    /// (one with no position) in chunks of 3, dealt over the ranks.
    func testChunkedScoringIsEachCandidatesOwnAtAnyRankCount() {
        func model() -> GPT2 { GPT2(config: GPT2Config(vocabSize: 11, contextLength: 16, embedDim: 8, layers: 1, heads: 2), seed: 3) }
        let candidates = (0..<7).map { i -> StepSequence in
            let ids: [Int32] = i == 4 ? [2] : (0..<(3 + (i * 5) % 7)).map { Int32(($0 * 4 + i) % 11) }
            return StepSequence(example: i, origin: .rollout, ids: ids, lossMask: ids.indices.map { $0 == 0 ? 0 : 1 }, promptLength: 1)
        }
        let scorer = TargetLogProbScorer(temperature: 0.8), one = model()
        let alone = candidates.map { CandidateScoring.scoreOne($0, in: CandidateScoringPass(scorer: scorer, model: one, padId: 0)) }
        var first: [[Float]]? = nil
        for ranks in [1, 2, 3] {
            let perRank: [[[Float]]] = InProcessGroup.run(size: ranks) { comm in
                CandidateScoring.scoreInChunks(candidates, chunk: 3, with: scorer, model: model(), comm: comm, padId: 0)
            }
            for (r, scores) in perRank.enumerated() {
                XCTAssertEqual(scores.count, candidates.count, "rank \(r) of \(ranks)")
                if let first { XCTAssertEqual(scores, first, "rank \(r) of \(ranks)") } else { first = scores }
            }
        }
        for (i, (got, want)) in zip(first ?? [], alone).enumerated() {
            XCTAssertEqual(got[2], want[2], "candidate \(i): tokens")
            XCTAssertEqual(TargetLogProbScorer.sum(got), TargetLogProbScorer.sum(want), accuracy: 1e-5, "candidate \(i)")   // float32 forwards of two shapes
        }
        XCTAssertEqual(first?[4], [0, 0, 0], "no position, no score")
        // 16 rollouts a forward, fewer where their logits would pass 64 MiB.
        XCTAssertEqual(LeaveOneOutAdvantages.chunk(longest: 20, vocab: 11), 16)
        XCTAssertEqual(LeaveOneOutAdvantages.chunk(longest: 64, vocab: 49_152), 5)
        XCTAssertEqual(LeaveOneOutAdvantages.chunk(longest: 1024, vocab: 151_936), 1)
    }

    /// A long answer's log-likelihood crosses ranks as two floats: 3,000 tokens summing to over
    /// −1,000 in magnitude, where float32 values are 1e-4 apart or more, keep the Double sum to 1e-9.
    func testALongAnswersSumKeepsDoublePrecision() {
        let rows = 3000, V = 3
        let logits = (0..<(rows * V)).map { Float(($0 * 7919) % 13) / 5 }
        let targets = (0..<rows).map { Int32($0 % V) }, mask = [Float](repeating: 1, count: rows)
        var want = 0.0
        for t in 0..<rows {   // each token's float32 log-prob, as the scorer takes it, summed in Double
            let z = (0..<V).map { logits[t * V + $0] / Float(0.9) }
            want += Double(z[Int(targets[t])] - SoftmaxKernels.logSumExp(z, count: V))
        }
        let score = logits.withUnsafeBufferPointer {
            TargetLogProbScorer(temperature: 0.9).score(CandidateView(rows: rows, vocab: V, logits: $0.baseAddress!, targets: targets[...], mask: mask[...]))
        }
        XCTAssertLessThan(want, -1000)
        XCTAssertEqual(TargetLogProbScorer.sum(score), want, accuracy: 1e-9 * abs(want))
        XCTAssertEqual(score[2], Float(rows))
    }

    func testAdvantagesMatchTRL() {
        for c in Self.fixture.advantages {
            let got = LeaveOneOutAdvantages(rewards: c.rewards, kl: c.kl, tokens: c.kl.map { _ in 1 }, beta: c.beta,
                                            groupSize: c.group_size, normalize: c.normalize, clip: c.clip.map { $0[0]...$0[1] })
            XCTAssertEqual(got.advantages.count, c.expected.count)
            for (g, w) in zip(got.advantages, c.expected) {   // stored as Float: 6e-8 relative
                XCTAssertEqual(Double(g), w, accuracy: 1e-6 * max(1, abs(w)), "\(c.rewards) kl \(c.kl) β \(c.beta) normalize \(c.normalize) clip \(c.clip ?? [])")
            }
        }
    }

    /// The grpo batch through the trainer as rloo's rollouts; `truncated` as in GRPOReferenceTests.
    func harness(onPolicy: Bool = false, tempered: Fixture.Tempered? = nil, truncated: Int? = nil, micro: Int) -> TrainerHarness {
        let f = Self.batch
        let examples = f.examples.enumerated().map { i, e in
            Example(ids: e.ids, lossMask: RolloutProducer.trainedMask(e.loss_mask, finish: i == truncated ? .length : .stop),
                    promptLength: e.loss_mask.firstIndex(of: 1) ?? 1, answer: nil, source: "ref:\(i)")
        }
        var h = TrainerHarness(examples: examples, positions: f.seq_len, vocab: f.vocab, current: f.logits.current.flatMap { $0 },
                               microBatchSize: micro, totalSteps: 4)
        let advantages = f.examples.map(\.advantage), behaviour = tempered?.behaviour ?? f.examples.map(\.behaviour)
        h.rolloutTemperature = tempered?.value ?? 1
        h.makeProducer = {
            let p = FixedRolloutProducer(examples: $0.examples, advantages: advantages, behaviour: behaviour)
            p.onPolicy = onPolicy
            return p
        }
        return h
    }

    func assertMatchesTRL(_ h: TrainerHarness, _ args: [String: String], ranks: Int, loss: Double, grad: [[Double]],
                          figures: [String: Double], label: String) throws {
        let got = try h.run("rloo", args.merging(["beta": "0"]) { a, _ in a }, ranks: ranks)[0]
        XCTAssertEqual(got.loss, loss, accuracy: 2e-6 * max(1, abs(loss)), "\(label): loss")
        assertGradientMatchesReference(got.gradient, grad, label)
        XCTAssertEqual(figures.count, 4, label)
        for (key, want) in figures {   // TRL's clip shares are float32
            XCTAssertEqual(got.diagnostics[key] ?? .nan, want, accuracy: key == "entropy" ? 1e-5 : 1e-6, "\(label): \(key)")
        }
    }

    func testLossGradientAndFiguresMatchTRLAtAnySplit() throws {
        XCTAssertEqual(Set(Self.fixture.configurations.map(\.on_policy)), [false, true])
        // On policy with a bound at 1 (ε = 0): the ratio ties the clipped term, torch passes half.
        XCTAssertEqual(Self.fixture.configurations.filter { $0.on_policy && ($0.args["epsilon"] == "0.0" || $0.args["epsilon_high"] == "0.0") }.count, 2)
        for c in Self.fixture.configurations {
            for (ranks, micro) in [(1, 2), (1, 6), (3, 1), (2, 3)] {
                try assertMatchesTRL(harness(onPolicy: c.on_policy, micro: micro), c.args, ranks: ranks, loss: c.loss, grad: c.grad,
                                     figures: c.figures, label: "\(c.args) on-policy \(c.on_policy) at \(ranks) rank(s), micro-batches of \(micro)")
            }
        }
    }

    /// Log-probs and entropy of softmax(z/T) at the rollout temperature, the sampler's log-probs at T.
    func testAtTheRolloutTemperatureMatchesTRL() throws {
        let t = Self.fixture.temperature
        for (ranks, micro) in [(1, 6), (3, 1)] {
            try assertMatchesTRL(harness(tempered: t, micro: micro), [:], ranks: ranks, loss: t.loss, grad: t.grad, figures: t.figures,
                                 label: "T = \(t.value) at \(ranks) rank(s)")
        }
    }

    /// A rollout masked by mask_truncated_completions still counts in B, with ratio 1 (loss −A).
    func testMaskedTruncatedRolloutCountsAsTRLs() throws {
        let t = Self.fixture.truncated
        for (ranks, micro) in [(1, 2), (2, 3)] {
            try assertMatchesTRL(harness(truncated: t.rollout, micro: micro), [:], ranks: ranks, loss: t.loss, grad: t.grad,
                                 figures: t.figures, label: "rollout \(t.rollout) truncated at \(ranks) rank(s)")
        }
    }

    /// kl_i = Σ_t m_t·(log softmax(z/T)[y] − log softmax(z_ref/T)[y]) over each sequence's trained
    /// tokens, against the policy's and the reference's own forwards, one sequence at a time, in
    /// Double here; exactly 0 where the reference is the policy.
    func testKLPenaltySumsThePolicyMinusTheReferenceLogProbs() {
        func model(seed: UInt64) -> GPT2 { GPT2(config: GPT2Config(vocabSize: 11, contextLength: 16, embedDim: 8, layers: 1, heads: 2), seed: seed) }
        let reference = model(seed: 7), policy = model(seed: 8)
        var sequences: [StepSequence] = []
        for i in 0..<5 {
            let ids: [Int32] = [1, Int32(2 + i), 3] + (0...(i % 3 + 1)).map { Int32(($0 * 3 + i) % 11) }
            var mask = [UInt8](repeating: 0, count: 3) + [UInt8](repeating: 1, count: ids.count - 3)
            if i == 2 { mask[4] = 0 }            // a token out of the loss
            if i == 4 { mask = mask.map { _ in 0 } }   // a rollout masked whole
            var s = StepSequence(example: i, origin: .rollout, ids: ids, lossMask: mask, promptLength: 3)
            s.behaviourLogProbs = ids.indices.map { $0 < 3 ? 0 : -0.25 * Float($0) - Float(i) * 0.1 }
            sequences.append(s)
        }
        let temperature: Float = 0.7
        let p = StepPreparation(step: 0, comm: LocalCommunicator(), model: policy, examples: [], tokenizer: ByteTokenizer(), seed: 1, microBatchSize: 2)
        let got = LeaveOneOutAdvantages.klSums(sequences, penalty: .init(reference: reference, beta: 0.05, temperature: temperature), p)
        func logProbs(_ model: GPT2, _ s: StepSequence) -> [Double] {
            let n = s.ids.count - 1
            let logits = model.forward(Tape(recording: false), inputs: Array(s.ids.dropLast()), positions: (0..<n).map(Int32.init),
                                       segments: nil, batch: 1, seqLen: n)
            return (0..<n).map { t in
                let z = (0..<11).map { Double(logits.data[t * 11 + $0]) / Double(temperature) }
                return z[Int(s.ids[t + 1])] - log(z.map { exp($0) }.reduce(0, +))
            }
        }
        for (i, s) in sequences.enumerated() {
            let old = logProbs(policy, s), ref = logProbs(reference, s)
            var kl = 0.0, tokens = 0.0
            for t in old.indices where s.lossMask[t + 1] != 0 { kl += old[t] - ref[t]; tokens += 1 }
            XCTAssertEqual(got.tokens[i], tokens, "sequence \(i): trained tokens")
            // The scorer's per-token log-probs are float32 (≈ 1e-7 each), these Double.
            XCTAssertEqual(got.kl[i], kl, accuracy: 1e-5 * max(1, abs(kl)), "sequence \(i): kl")
            if i != 4 { XCTAssertGreaterThan(abs(kl), 1e-3, "sequence \(i): the two models differ") }
        }
        XCTAssertEqual(got.kl[4], 0, "a rollout with no trained token has no KL")
        let same = LeaveOneOutAdvantages.klSums(sequences, penalty: .init(reference: policy, beta: 0.05, temperature: temperature), p)
        XCTAssertEqual(same.kl, [Double](repeating: 0, count: sequences.count), "the policy as its own reference")
        // The same bits at two and three ranks (each with its own copies of the models): the
        // rollouts dealt over them, one per forward.
        for ranks in [2, 3] {
            let perRank: [[Double]] = InProcessGroup.run(size: ranks) { comm in
                let q = StepPreparation(step: 0, comm: comm, model: model(seed: 8), examples: [], tokenizer: ByteTokenizer(), seed: 1, microBatchSize: 2)
                return LeaveOneOutAdvantages.klSums(sequences, penalty: .init(reference: model(seed: 7), beta: 0.05, temperature: temperature), q).kl
            }
            for (r, kl) in perRank.enumerated() { XCTAssertEqual(kl, got.kl, "rank \(r) of \(ranks)") }
        }
    }
}
