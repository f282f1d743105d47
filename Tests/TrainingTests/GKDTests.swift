import Foundation
import XCTest
@testable import Distributed
@testable import Models
@testable import TensorCore
@testable import Training

/// GKD (arXiv 2306.13649): the loss and dL/dlogits against TRL 1.16's own
/// `GKDTrainer.generalized_jsd_loss` (`scripts/make-gkd-references`) through the real trainer at
/// several splits over ranks and micro-batches, and the producer's on-policy steps: their share,
/// and the student's own answers in place of the data's. (The finite-difference checks are
/// `ObjectiveGradientTests`' gkd rows; ranks under real mpirun, resume and refusals `GKDCLITests`.)
final class GKDTests: XCTestCase {
    struct Fixture: Decodable {
        struct Example: Decodable { var ids: [Int32]; var loss_mask: [UInt8] }
        struct Configuration: Decodable { var args: [String: String]; var loss: Double; var grad: [[Double]] }
        var vocab: Int, seq_len: Int
        var examples: [Example]
        var logits: [[Float]], reference: [[Float]]
        var configurations: [Configuration]
    }

    static let fixture: Fixture = referenceFixture("gkd-reference.json")

    func testLossAndGradientMatchTRLAtAnySplit() throws {
        let f = Self.fixture
        XCTAssertEqual(Set(f.configurations.map { $0.args["beta"]! }), ["0.5", "0.0", "1.0", "0.1", "0.9"])
        let examples = f.examples.enumerated().map { i, e in
            Example(fixture: e.ids, lossMask: e.loss_mask, source: "ref:\(i)")
        }
        for c in f.configurations {
            // lmbda 0: every step trains the rows as they are (the table model cannot sample).
            let args = c.args.merging(["lmbda": "0"]) { a, _ in a }
            for (ranks, micro) in [(1, 2), (1, 5), (3, 1), (2, 2)] {
                let h = TrainerHarness(examples: examples, positions: f.seq_len, vocab: f.vocab, current: f.logits.flatMap { $0 },
                                       reference: f.reference.flatMap { $0 }, microBatchSize: micro, totalSteps: 4)
                let got = try h.run("gkd", args, ranks: ranks)[0]
                let label = "gkd \(c.args) at \(ranks) rank(s), micro-batches of \(micro)"
                XCTAssertEqual(got.loss, c.loss, accuracy: 2e-6 * max(1, abs(c.loss)), "\(label): loss")
                assertGradientMatchesReference(got.gradient, c.grad, label)
            }
        }
    }

    /// One draw per step: lmbda 0 never samples, 1 always, 0.3 on about 30 % of the steps, and
    /// the draws are a function of (seed, step) alone.
    func testOnPolicyShareFollowsLmbda() {
        func share(_ lmbda: Double, seed: UInt64 = 7) -> Double {
            Double((0..<4000).filter { DistillationProducer.draw(seed: seed, step: $0) < lmbda }.count) / 4000
        }
        XCTAssertEqual(share(0), 0)
        XCTAssertEqual(share(1), 1)
        XCTAssertEqual(share(0.3), 0.3, accuracy: 0.025)
        XCTAssertEqual(share(0.75, seed: 99), 0.75, accuracy: 0.025)
        XCTAssertEqual(DistillationProducer.draw(seed: 7, step: 12), DistillationProducer.draw(seed: 7, step: 12))
        XCTAssertNotEqual(DistillationProducer.draw(seed: 7, step: 12), DistillationProducer.draw(seed: 8, step: 12))
        // lmbda is kept as written (0.3, not float32's 0.30000001), as TRL's Python float.
        XCTAssertEqual((try ObjectiveRegistry.make(name: "gkd", args: ["lmbda": "0.3"]) as? GKDObjective)?.lmbda, 0.3)
    }

    /// An on-policy step keeps each row's prompt and trains the student's own answer to it —
    /// the generation of the weights the step starts from, row i from stream (seed_s, i) — with
    /// the prompt out of the loss; an off-policy step trains the rows as they are; with seq_kd
    /// the other steps train the teacher's answers.
    func testOnPolicyStepsTrainTheStudentsAnswers() {
        let student = GPT2(config: GPT2Config(vocabSize: 11, contextLength: 24, embedDim: 8, layers: 1, heads: 2), seed: 1)
        let teacher = GPT2(config: GPT2Config(vocabSize: 11, contextLength: 24, embedDim: 16, layers: 2, heads: 2), seed: 2)
        let examples = (0..<6).map { i in
            Example(ids: [1, Int32(2 + i % 3), 3, 4, 5, 6], lossMask: [0, 0, 0, 1, 1, 1], promptLength: 3, answer: nil, source: "d:\(i)")
        }
        let options = SamplingOptions(maxNewTokens: 5, temperature: 1, stopIds: [6])
        func producer(lmbda: Double, seqKD: Bool = false) -> DistillationProducer {
            DistillationProducer(source: UniformSampler(datasetSize: 6, batchSize: 4, seed: 3), lmbda: lmbda, seqKD: seqKD,
                                 teacher: teacher, options: options, stopId: 6, maxLength: 24, seed: 5)
        }
        func prepare(_ p: DistillationProducer, step: Int) -> StepBatch {
            p.prepare(StepPreparation(step: step, comm: LocalCommunicator(), model: student, examples: examples, tokenizer: ByteTokenizer(),
                                      seed: 5, microBatchSize: 2))
        }
        let rows = UniformSampler(datasetSize: 6, batchSize: 4, seed: 3).batch(step: 2)
        for (p, sampler) in [(producer(lmbda: 1), student as LanguageModel), (producer(lmbda: 0, seqKD: true), teacher)] {
            let batch = prepare(p, step: 2)
            let expected = Generator.generate(sampler, prompts: rows.map { Array(examples[$0].ids[0..<3]) }, options: options,
                                              rngs: rows.indices.map { RNG(seed: DistillationProducer.streamSeed(seed: 5, step: 2), stream: UInt64($0)) })
            XCTAssertEqual(batch.sequences.map(\.example), rows)
            for (i, s) in batch.sequences.enumerated() {
                let answer = expected[i].ids + (expected[i].finish == .stop ? [expected[i].stopId ?? 6] : [])
                XCTAssertEqual(s.ids, Array(examples[rows[i]].ids[0..<3]) + answer, "row \(i)")
                XCTAssertEqual(s.lossMask, [0, 0, 0] + [UInt8](repeating: 1, count: answer.count), "row \(i)")
            }
            XCTAssertNotEqual(batch.sequences.map(\.ids), rows.map { examples[$0].ids }, "the data's answers were kept")
        }
        let off = prepare(producer(lmbda: 0), step: 2)
        XCTAssertEqual(off.sequences.map(\.ids), rows.map { examples[$0].ids })
        XCTAssertEqual(off.sequences.map(\.lossMask), rows.map { examples[$0].lossMask })
    }

    /// The divergence at the mixture's extremes, against float64: β near 0 or 1 with a teacher and
    /// student 20 nats apart (log1p of a rounded 1 − β was −∞ at β 1e-9: a loss of inf), and
    /// exactly 0 with its gradient where the two are equal, at any β.
    func testTheMixtureIsAccurateAtExtremeBetaAndExactWhereTheyAgree() {
        func exact(_ z: [Double], _ zt: [Double], _ beta: Double) -> Double {
            func logSoftmax(_ x: [Double]) -> [Double] { let m = x.max()!; let l = m + log(x.map { exp($0 - m) }.reduce(0, +)); return x.map { $0 - l } }
            let ls = logSoftmax(z), lt = logSoftmax(zt)
            var d = 0.0
            for v in z.indices {
                let s = exp(ls[v]), t = exp(lt[v]), lm = log((1 - beta) * s + beta * t)
                d += beta * t * (lt[v] - lm) + (1 - beta) * s * (ls[v] - lm)
            }
            return d
        }
        let z: [Float] = [0, 20, -3], zt: [Float] = [20, 0, 1]
        var logS = [Float](repeating: 0, count: 3), gap = [Float](repeating: 0, count: 3)
        for beta: Float in [1e-9, 1e-7, 1e-6, 0.01, 0.5, 0.99, 1 - 0x1p-24] {
            var g = [Float](repeating: 0, count: 3)
            let got = GeneralizedJSD.row(student: z, teacher: zt, count: 3, beta: beta, logS: &logS, gap: &gap, dlogits: &g, scale: 1)
            let want = exact(z.map(Double.init), zt.map(Double.init), Double(beta))
            XCTAssertEqual(got.divergence, want, accuracy: 1e-5 * max(1, abs(want)), "β \(beta)")
            XCTAssertTrue(g.allSatisfy(\.isFinite), "β \(beta): \(g)")
            var same = [Float](repeating: 0, count: 3)
            let zero = GeneralizedJSD.row(student: z, teacher: z, count: 3, beta: beta, logS: &logS, gap: &gap, dlogits: &same, scale: 1)
            XCTAssertEqual(zero.divergence, 0, "β \(beta)")
            XCTAssertEqual(same, [0, 0, 0], "β \(beta)")
        }
    }
}
