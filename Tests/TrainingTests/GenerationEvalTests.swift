import Distributed
import Foundation
import Models
import TensorCore
import TestSupport
import XCTest
@testable import Training

/// Generation scores computed by hand: a bigram "model" (the next token's logits depend only
/// on the last token, set directly) whose greedy answers and their probabilities are chosen,
/// run through the evaluator's generation pass at one and two ranks.
final class GenerationEvalTests: XCTestCase {
    final class BigramModel: LanguageModel {
        let parameters: ParameterStore
        var generationConfig: GenerationConfig?
        let vocabSize: Int
        var maxSequenceLength: Int { 16 }
        var configJSON: [String: Any] { ["model_type": "bigram"] }
        var blockRanges: [Range<Int>] { [] }
        init(vocab: Int) {
            vocabSize = vocab
            parameters = ParameterStore(layout: [("next", [vocab, vocab])])
        }
        func makeReplica() -> LanguageModel { BigramModel(vocab: vocabSize) }
        func forward(_ tape: Tape, inputs: [Int32], positions: [Int32], segments: [Int32]?, batch: Int, seqLen: Int) -> Tensor {
            tape.embedding(inputs, table: parameters["next"])
        }
        /// After `token`, `next` has probability p and every other token shares the rest.
        func set(after token: UInt8, _ next: Int32, probability p: Double) {
            let row = parameters["next"].data + Int(token) * vocabSize
            row.update(repeating: 0, count: vocabSize)
            row[Int(next)] = Float(log(p * Double(vocabSize - 1) / (1 - p)))
        }
    }

    let tokenizer = ByteTokenizer()

    /// Prompts "a", "e", "b", "c", "d": greedy answers x, x, y, x, y then end-of-text (p ≈ 1
    /// after x and y), with probabilities 0.95, 0.91, 0.85, 0.45, 0.15; the references make
    /// the first, fourth right and the others wrong.
    func setUpModel() -> (BigramModel, [Example]) {
        let model = BigramModel(vocab: tokenizer.vocabSize)
        let eos = tokenizer.eosId
        let answers: [(prompt: UInt8, next: UInt8, p: Double, reference: String)] = [
            (UInt8(ascii: "a"), UInt8(ascii: "x"), 0.95, "x"), (UInt8(ascii: "e"), UInt8(ascii: "x"), 0.91, "z"),
            (UInt8(ascii: "b"), UInt8(ascii: "y"), 0.85, "z"), (UInt8(ascii: "c"), UInt8(ascii: "x"), 0.45, "x"),
            (UInt8(ascii: "d"), UInt8(ascii: "y"), 0.15, "w"),
        ]
        for a in answers { model.set(after: a.prompt, Int32(a.next), probability: a.p) }
        for t in [UInt8(ascii: "x"), UInt8(ascii: "y")] { model.set(after: t, eos, probability: 1 - 1e-12) }
        let examples = answers.enumerated().map { i, a in
            Example(ids: [Int32(a.prompt), Int32(a.next), eos], lossMask: [0, 1, 1], promptLength: 1,
                    answer: a.reference, source: "hand:\(i + 1)")
        }
        return (model, examples)
    }

    func scores(ranks: Int, samples: Int = 0, passK: [Int] = []) throws -> GenerationScores {
        let (model, examples) = setUpModel()
        var options = EvalOptions()
        options.maxNewTokens = 4; options.samples = samples; options.passK = passK
        let results = InProcessGroup.run(size: ranks) { comm in
            try! GenerationEval.run(model: model, tokenizer: self.tokenizer, examples: examples, comm: comm, options: options).0!
        }
        for r in results.dropFirst() { XCTAssertEqual(r.ece, results[0].ece); XCTAssertEqual(r.passAt1, results[0].passAt1) }
        return results[0]
    }

    /// 10 equal-width bins: 0.95 (right) and 0.91 (wrong) share bin 9 (mean confidence 0.93,
    /// accuracy 0.5); 0.85 (wrong) bin 8, 0.45 (right) bin 4, 0.15 (wrong) bin 1.
    /// ECE = Σ_b n_b/n·|conf_b − acc_b| = (2·0.43 + 0.85 + 0.55 + 0.15)/5 = 0.482.
    func testCalibrationErrorAndAccuracyByHand() throws {
        for ranks in [1, 2] {
            let s = try scores(ranks: ranks)
            XCTAssertEqual(s.count, 5)
            XCTAssertEqual(s.passAt1, 2.0 / 5, accuracy: 1e-12, "\(ranks) rank(s)")
            XCTAssertEqual(s.ece, 0.482, accuracy: 1e-5, "\(ranks) rank(s)")
            XCTAssertEqual(s.meanLength, 1, accuracy: 1e-12)
        }
    }

    /// The teacher-forced numbers by hand: each example's answer token has probability p after
    /// its prompt (every other token (1 − p)/(V − 1)), its end-of-text ≈ 1, so over the ten loss
    /// tokens eval_loss = Σ −log p / 10 and eval_entropy (TRL's name: the mean entropy of the
    /// next-token distribution over the completion tokens) = Σ H(p) / 10 with
    /// H(p) = −p·log p − (1 − p)·log((1 − p)/(V − 1)); every answer token is the argmax.
    func testTeacherForcedLossEntropyAndAccuracyByHand() throws {
        let (model, examples) = setUpModel()
        let V = Double(tokenizer.vocabSize)
        let ps = [0.95, 0.91, 0.85, 0.45, 0.15]
        let loss = ps.map { -log($0) }.reduce(0, +) / 10
        let entropy = ps.map { -$0 * log($0) - (1 - $0) * log((1 - $0) / (V - 1)) }.reduce(0, +) / 10
        for ranks in [1, 2] {
            let results = InProcessGroup.run(size: ranks) { comm in
                try! Evaluator.evaluate(model: model, tokenizer: self.tokenizer, examples: examples, comm: comm, options: EvalOptions())
            }
            for r in results {
                XCTAssertEqual(r.lossTokens, 10)
                XCTAssertEqual(r.loss, loss, accuracy: 1e-5, "\(ranks) rank(s)")
                XCTAssertEqual(r.entropy, entropy, accuracy: 1e-5, "\(ranks) rank(s)")
                XCTAssertEqual(r.tokenAccuracy, 1, "\(ranks) rank(s)")
                XCTAssertEqual(r.fields.first { $0.0 == "eval_entropy" }?.1 as? Double, r.entropy)
            }
        }
    }

    /// The unbiased estimator, 1 − C(n−c, k)/C(n, k), against values worked out by hand.
    func testPassAtKEstimatorByHand() {
        // 1 − C(n−c, k)/C(n, k)
        XCTAssertEqual(GenerationEval.passAtK(n: 5, c: 2, k: 1), 0.4, accuracy: 1e-12)
        XCTAssertEqual(GenerationEval.passAtK(n: 5, c: 2, k: 3), 0.9, accuracy: 1e-12)      // 1 − 1/10
        XCTAssertEqual(GenerationEval.passAtK(n: 5, c: 1, k: 2), 0.4, accuracy: 1e-12)      // 1 − 6/10
        XCTAssertEqual(GenerationEval.passAtK(n: 8, c: 3, k: 4), 1 - 5.0 / 70, accuracy: 1e-12)
        XCTAssertEqual(GenerationEval.passAtK(n: 5, c: 0, k: 3), 0)
        XCTAssertEqual(GenerationEval.passAtK(n: 5, c: 3, k: 3), 1)                         // n − c < k
    }

    /// Sampled answers from a model that is sure of every answer (p = 1 − 1e-9), right on two
    /// prompts of five: every draw repeats the greedy answer, so pass@k = 2/5 for every k.
    func testPassAtKOnAModelThatIsSometimesRight() throws {
        let (model, examples) = setUpModel()
        // "a" → x and "c" → x for sure (right), "e", "b", "d" for sure wrong.
        for (prompt, next) in [("a", "x"), ("e", "x"), ("b", "y"), ("c", "x"), ("d", "y")] {
            model.set(after: UInt8(ascii: Unicode.Scalar(prompt)!), Int32(UInt8(ascii: Unicode.Scalar(next)!)), probability: 1 - 1e-9)
        }
        var options = EvalOptions()
        options.maxNewTokens = 4; options.samples = 4; options.passK = [1, 2, 4]
        let s = try GenerationEval.run(model: model, tokenizer: tokenizer, examples: examples, comm: LocalCommunicator(), options: options).0!
        for k in [1, 2, 4] { XCTAssertEqual(s.passAtK[k] ?? .nan, 2.0 / 5, accuracy: 1e-12, "pass@\(k)") }
        XCTAssertEqual(s.passAt1, 2.0 / 5)
    }

    /// eval's progress: each phase reports up to its total, at any rank count; the shown line
    /// (`EvalProgress`) waits `interval` between lines and gives the phase's ETA.
    func testProgressReachesEachPhasesTotal() throws {
        let (model, examples) = setUpModel()
        for ranks in [1, 2] {
            var options = EvalOptions()
            options.maxNewTokens = 4; options.samples = 2; options.passK = [1]
            let seen = InProcessGroup.run(size: ranks) { comm -> [(String, Int, Int)] in
                var calls: [(String, Int, Int)] = []
                var mine = options
                mine.progress = { calls.append(($0, $1, $2)) }
                _ = try! GenerationEval.run(model: model, tokenizer: self.tokenizer, examples: examples, comm: comm, options: mine)
                return calls
            }
            let rank0 = seen[0]
            XCTAssertEqual(rank0.filter { $0.0 == "greedy answers" }.last.map { [$0.1, $0.2] }, [5, 5], "\(ranks) rank(s): \(rank0)")
            XCTAssertEqual(rank0.filter { $0.0 == "sampled prompts (2 each)" }.last.map { [$0.1, $0.2] }, [5, 5], "\(ranks) rank(s): \(rank0)")
            XCTAssertTrue(rank0.allSatisfy { $0.1 >= 1 && $0.1 <= $0.2 }, "\(rank0)")
        }
        var lines: [String] = []
        let every = EvalProgress(interval: 0) { lines.append($0) }
        every.update("greedy answers", done: 2, total: 8)
        every.update("greedy answers", done: 8, total: 8)
        XCTAssertEqual(lines.count, 2)
        XCTAssertTrue(lines.allSatisfy { $0.hasPrefix("eval: greedy answers ") && $0.contains(" elapsed, ETA ") }, "\(lines)")
        XCTAssertTrue(lines[1].hasPrefix("eval: greedy answers 8/8, ") && lines[1].hasSuffix("ETA 00:00"), "\(lines)")
        let quiet = EvalProgress(interval: 3600) { lines.append($0) }
        quiet.update("greedy answers", done: 1, total: 8)
        XCTAssertEqual(lines.count, 2, "a line before the interval: \(lines)")
    }
}
