import Foundation
import XCTest
@testable import Models
@testable import TensorCore
@testable import Training

/// KTO (arXiv 2402.01306): the loss, dL/dlogits and logged figures against TRL 1.16's own
/// `KTOTrainer._compute_loss` (`scripts/make-kto-references`) through the real trainer at
/// several splits over ranks and micro-batches, the KL term over the whole step batch; the
/// mismatched pairs the producer makes; and unpaired rows as the reader takes and refuses them.
/// (Finite differences: `ObjectiveGradientTests`' kto rows; ranks under real mpirun, resume and
/// refusals: `KTOCLITests`.)
final class KTOTests: XCTestCase {
    struct Fixture: Decodable {
        struct Example: Decodable { var ids: [Int32]; var loss_mask: [UInt8]; var label: Bool }
        struct Reference: Decodable {
            var loss_type: String, beta: Double, desirable_weight: Double, undesirable_weight: Double, swapped: Bool
            var loss: Double, grad: [[Double]], metrics: [String: Double]
        }
        var vocab: Int, seq_len: Int
        var examples: [Example]
        var logits: [[Float]], reference: [[Float]]
        var references: [Reference]
    }

    static let fixture: Fixture = referenceFixture("kto-reference.json")

    /// The training rows in the order given, every one in every step: TRL's batch order, which
    /// its rotation of the answers follows.
    final class InOrder: BatchSource {
        let count: Int
        init(_ count: Int) { self.count = count }
        func batch(step: Int) -> [Int] { Array(0..<count) }
        var state: [UInt64] { [] }
        func restore(_ state: [UInt64]) throws {}
    }

    static var examples: [Example] {
        fixture.examples.enumerated().map { i, e in
            var x = Example(fixture: e.ids, lossMask: e.loss_mask, source: "kto:\(i)")
            x.label = e.label
            return x
        }
    }

    func harness(_ ref: Fixture.Reference, microBatchSize: Int) -> TrainerHarness {
        let f = Self.fixture
        let (current, reference) = ref.swapped ? (f.reference, f.logits) : (f.logits, f.reference)
        var h = TrainerHarness(examples: Self.examples, positions: f.seq_len, vocab: f.vocab, current: current.flatMap { $0 },
                               reference: reference.flatMap { $0 }, microBatchSize: microBatchSize)
        let mismatched = ref.loss_type == "kto", n = f.examples.count, length = f.seq_len
        h.makeProducer = { _ in UnpairedProducer(source: InOrder(n), mismatched: mismatched, maxLength: length) }
        return h
    }

    func testLossGradientAndFiguresMatchTRLAtAnySplit() throws {
        let f = Self.fixture
        XCTAssertEqual(Set(f.references.map(\.loss_type)), Set(KTOObjective.LossType.allCases.map(\.rawValue)))
        XCTAssertEqual(f.references.filter { $0.loss_type == "kto" }.map { $0.metrics["kl"]! > 0 }, [true, true, true, false],
                       "a KL estimate above 0, and one clamped to 0")
        let answerTokens = f.examples.reduce(0) { $0 + $1.loss_mask.filter { $0 == 1 }.count }
        for ref in f.references {
            var args = ["beta": "\(ref.beta)", "desirable_weight": "\(ref.desirable_weight)", "undesirable_weight": "\(ref.undesirable_weight)"]
            if ref.loss_type != "kto" { args["loss_type"] = ref.loss_type }
            for (ranks, micro) in [(1, 7), (1, 1), (2, 3), (3, 2)] {
                let label = "\(args) swapped \(ref.swapped) at \(ranks) rank(s), micro-batches of \(micro)"
                let got = try harness(ref, microBatchSize: micro).run("kto", args, ranks: ranks)[0]
                XCTAssertEqual(got.loss, ref.loss, accuracy: 2e-6 * max(1, abs(ref.loss)), "\(label): loss")
                assertGradientMatchesReference(got.gradient, ref.grad, label)
                // Every figure TRL logs (apo_zero_unpaired's kl is 0, as TRL logs it).
                XCTAssertEqual(Set(ref.metrics.keys), ["kl", "entropy", "logits/chosen", "logits/rejected", "rewards/chosen", "rewards/rejected",
                                                       "rewards/margins", "logps/chosen", "logps/rejected"])
                for (key, want) in ref.metrics {
                    XCTAssertEqual(got.diagnostics[key] ?? .nan, want, accuracy: 1e-5 * max(1, abs(want)), "\(label): \(key)")
                }
                // The mismatched sequences train nothing and count no loss token.
                XCTAssertEqual(got.lossTokens, answerTokens, "\(label): loss tokens")
            }
        }
    }

    /// Policy = reference: every log-ratio and the KL term are 0, so each row's loss is
    /// 1 − σ(0) = ½ (times its weight) and dL/dz of a desirable row's answer token is
    /// −λ_D·β/(4N)·(onehot − softmax): closed form, no reference needed.
    func testEqualPolicyAndReferenceGiveOneHalf() throws {
        let f = Self.fixture, ref = f.references[0]
        var h = harness(ref, microBatchSize: 2)
        h.reference = h.current
        let got = try h.run("kto", ["beta": "0.4", "desirable_weight": "2"])[0]
        let n = Double(f.examples.count), nD = Double(f.examples.filter(\.label).count)
        XCTAssertEqual(got.loss, (2 * nD + (n - nD)) * 0.5 / n, accuracy: 1e-7)
        XCTAssertEqual(got.diagnostics["kl"] ?? .nan, 0, accuracy: 1e-7)
        let e = f.examples[0], V = f.vocab
        XCTAssertTrue(e.label)
        for t in 0..<(e.ids.count - 1) where e.loss_mask[t + 1] == 1 {
            let z = f.logits[t].map(Double.init), lse = log(z.map(exp).reduce(0, +))
            for v in 0..<V {
                let want = -2 * 0.4 / (4 * n) * ((v == Int(e.ids[t + 1]) ? 1 : 0) - exp(z[v] - lse))
                XCTAssertEqual(Double(Array(h.gradient(got, sequence: 0, position: t))[v]), want, accuracy: 1e-6, "position \(t), token \(v)")
            }
        }
    }

    /// Row i's mismatched pair is its prompt with row i − 1's answer (row 0 with the last
    /// row's), in the step's order, cut to max_length keeping the start; labels set the roles.
    func testMismatchedPairsRotateTheAnswersWithinTheStep() {
        func row(_ prompt: [Int32], _ answer: [Int32], _ label: Bool) -> Example {
            var e = Example(ids: prompt + answer, lossMask: prompt.map { _ in 0 } + answer.map { _ in 1 }, promptLength: prompt.count,
                            answer: nil, source: "r")
            e.label = label
            return e
        }
        let examples = [row([1, 2], [3, 4, 5], true), row([6], [7], false), row([8, 9, 10], [11, 12], false)]
        let batch = UnpairedProducer.batch(step: 0, rows: [2, 0, 1], examples: examples, mismatched: true, maxLength: 5)
        XCTAssertEqual(batch.sequences.map(\.origin), [.demonstration, .demonstration, .demonstration, .mismatched, .mismatched, .mismatched])
        XCTAssertEqual(batch.sequences.map(\.pairRole), [.rejected, .chosen, .rejected, .none, .none, .none])
        XCTAssertEqual(batch.sequences.map(\.pair), [-1, -1, -1, -1, -1, -1])
        // Order 2, 0, 1: row 2 takes row 1's answer, row 0 row 2's, row 1 row 0's; 8 9 10 3 4 5 is cut to 5 tokens.
        XCTAssertEqual(batch.sequences[3...].map(\.ids), [[8, 9, 10, 7], [1, 2, 11, 12], [6, 3, 4, 5]])
        XCTAssertEqual(batch.sequences[3...].map(\.lossMask), [[0, 0, 0, 1], [0, 0, 1, 1], [0, 1, 1, 1]])
        XCTAssertEqual(batch.sequences[3...].map(\.example), [2, 0, 1])
        let cut = UnpairedProducer.batch(step: 0, rows: [0, 2], examples: examples, mismatched: true, maxLength: 4)
        XCTAssertEqual(cut.sequences[2...].map(\.ids), [[1, 2, 11, 12], [8, 9, 10, 3]])
        XCTAssertEqual(cut.sequences[2...].map(\.lossMask), [[0, 0, 1, 1], [0, 0, 0, 1]])
        // A pair line's two rows side by side: the answer comes from the nearest earlier row with
        // another prompt, not the prompt's own other answer; a batch of one prompt (one row drawn
        // twice) has no mismatched pair.
        let shared = [row([1, 2], [3], true), row([1, 2], [4], false), row([5], [6], true)]
        let skipped = UnpairedProducer.batch(step: 0, rows: [0, 1, 2], examples: shared, mismatched: true, maxLength: 9)
        XCTAssertEqual(skipped.sequences[3...].map(\.ids), [[1, 2, 6], [1, 2, 6], [5, 4]])
        XCTAssertEqual(UnpairedProducer.batch(step: 0, rows: [0, 1, 0], examples: shared, mismatched: true, maxLength: 9).sequences.count, 3)
        // kl_pairing=fixed: each row keeps the pair it has in file order (row 0 row 2's answer,
        // row 1 row 0's, row 2 row 1's), whichever rows share its step, where rotating within
        // the step [1, 2] would give row 1 row 2's answer.
        let fixed = UnpairedProducer.fixedMismatched(examples, maxLength: 5)
        XCTAssertEqual(fixed.map { $0?.ids }, [[1, 2, 11, 12], [6, 3, 4, 5], [8, 9, 10, 7]])
        let kept = UnpairedProducer.batch(step: 0, rows: [1, 2], examples: examples, mismatched: true,
                                          fixedLenders: UnpairedProducer.lenders(Array(examples.indices), examples: examples), maxLength: 5)
        XCTAssertEqual(kept.sequences[2...].map(\.ids), [[6, 3, 4, 5], [8, 9, 10, 7]])
        XCTAssertEqual(kept.sequences[2...].map(\.example), [1, 2])
        XCTAssertEqual(UnpairedProducer.batch(step: 0, rows: [1, 2], examples: examples, mismatched: true, maxLength: 5).sequences[2].ids, [6, 11, 12])
        // A step of one row holds its row's pair, where rotating within the step finds none.
        let one = UnpairedProducer.batch(step: 0, rows: [1], examples: examples, mismatched: true,
                                         fixedLenders: UnpairedProducer.lenders(Array(examples.indices), examples: examples), maxLength: 5)
        XCTAssertEqual(one.sequences.map(\.ids), [[6, 7], [6, 3, 4, 5]])
        XCTAssertEqual(UnpairedProducer.batch(step: 0, rows: [1], examples: examples, mismatched: true, maxLength: 5).sequences.count, 1)
        XCTAssertEqual(UnpairedProducer.fixedMismatched(shared, maxLength: 9).map { $0?.ids }, [[1, 2, 6], [1, 2, 6], [5, 4]])
        XCTAssertEqual(UnpairedProducer.fixedMismatched([shared[0], shared[1]], maxLength: 9).map { $0?.ids }, [nil, nil])
        // apo_zero_unpaired: no KL term, no mismatched pairs; and the trainer deals them apart.
        XCTAssertEqual(UnpairedProducer.batch(step: 0, rows: [0, 1], examples: examples, mismatched: false, maxLength: 5).sequences.count, 2)
        let dealt = Trainer.gradientAndEstimateUnits(batch)
        XCTAssertEqual(dealt.gradient, [[0], [1], [2]])
        XCTAssertEqual(dealt.estimate, [[3], [4], [5]])
    }

    func testReaderTakesLabelledRowsAndPairs() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kto-reader-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/kto.jsonl"
        try (#"{"prompt": "add 1 2 =", "completion": " 3", "label": true}"# + "\n"
             + #"{"prompt": [{"role": "user", "content": "hi"}], "completion": [{"role": "assistant", "content": "yo"}], "label": false}"# + "\n"
             + #"{"prompt": "p", "chosen": " good", "rejected": " bad"}"# + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let data = try Dataset(unpairedAt: path, tokenizer: ByteTokenizer(), maxLength: 256)
        XCTAssertEqual(data.examples.map(\.label), [true, false, true, false])
        XCTAssertEqual(data.examples.map(\.source), ["\(path):1", "\(path):2", "\(path):3", "\(path):3"])
        XCTAssertEqual(data.labelCounts.desirable, 2)
        XCTAssertEqual(data.desirableOnly.examples.map(\.source), ["\(path):1", "\(path):3"])
        // The label is in the data's hash (resume and the ranks' agreement compare it); unlabelled rows hash as before.
        var flipped = data.examples
        flipped[0].label = false
        XCTAssertNotEqual(CheckpointState.dataHash(flipped), CheckpointState.dataHash(data.examples))
        // An unlabelled row hashes its length, ids and mask alone, as before labels existed.
        var bare = data.examples[0]
        bare.label = nil
        var h = XXHash64()
        withUnsafeBytes(of: Int64(bare.ids.count).littleEndian) { h.update($0) }
        bare.ids.withUnsafeBytes { h.update($0) }
        bare.lossMask.withUnsafeBytes { h.update($0) }
        XCTAssertEqual(CheckpointState.dataHash([bare]), h.finalize())

        // A conversational prompt's own assistant turn is context: only the completion is scored
        // (TRL's completion_mask), where an SFT conversation would train every assistant turn.
        try (#"{"prompt": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}, {"role": "user", "content": "2+2?"}], "completion": "4", "label": true}"#)
            .write(toFile: path, atomically: true, encoding: .utf8)
        let turns = try Dataset(unpairedAt: path, tokenizer: ByteTokenizer(), maxLength: 256).examples[0]
        XCTAssertEqual(turns.lossMask[..<turns.promptLength].filter { $0 != 0 }.count, 0)
        XCTAssertEqual(Dataset.context(of: turns).count, turns.promptLength)
        XCTAssertEqual(lossTokenCount(turns), 2, "the completion's byte and its end-of-turn token")
        let sft = try Dataset(records: [SourcedRecord(record: .messages([ChatMessage(role: .user, content: "hi"), ChatMessage(role: .assistant, content: "hello there"),
                                                                          ChatMessage(role: .user, content: "2+2?"), ChatMessage(role: .assistant, content: "4")]),
                                                      path: path, line: 1)], path: path, tokenizer: ByteTokenizer(), maxLength: 256).examples[0]
        XCTAssertEqual(sft.ids, turns.ids)
        XCTAssertEqual(lossTokenCount(sft), 2 + "hello there".utf8.count + 1, "an SFT conversation trains the earlier turn too")
        // That row cut inside its completion keeps only the earlier turn's tokens: dropped, as a
        // row left without an answer token is.
        try (#"{"prompt": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}, {"role": "user", "content": "2+2?"}], "completion": "4", "label": true}"# + "\n"
             + #"{"prompt": "p", "completion": " q", "label": false}"#).write(toFile: path, atomically: true, encoding: .utf8)
        let cut = try Dataset(unpairedAt: path, tokenizer: ByteTokenizer(), maxLength: turns.promptLength)
        XCTAssertEqual(cut.examples.map(\.source), ["\(path):2"])
        XCTAssertEqual(cut.report.droppedNoLossTokens, 1)

        // Held out by line: a pair's two rows stay together.
        try (0..<40).map { #"{"prompt": "p\#($0)", "chosen": " a", "rejected": " b"}"# }.joined(separator: "\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let split = try Dataset(unpairedAt: path, tokenizer: ByteTokenizer(), maxLength: 256).splitByLine(heldOutFraction: 0.25, seed: 3)
        XCTAssertEqual(split.heldOut.count, 20)
        XCTAssertEqual(split.train.count, 60)
        XCTAssertTrue(Set(split.train.examples.map(\.source)).isDisjoint(with: split.heldOut.examples.map(\.source)))

        for (line, message) in [
            (#"{"prompt": "p", "completion": " a"}"#, #"missing field "label""#),
            (#"{"prompt": "p", "completion": " a", "label": "yes"}"#, #"field "label" must be true or false, got "yes""#),
            (#"{"prompt": "p", "completion": " a", "label": 1}"#, #"field "label" must be true or false, got 1"#),
            (#"{"prompt": "p", "completion": "", "label": true}"#, "empty completion"),
            (#"{"prompt": "p", "chosen": " a", "rejected": " b", "label": true}"#, #"a line is a pair or one labelled row"#),
            (#"{"completion": " a", "label": true}"#, #"missing field "prompt""#),
        ] {
            try (#"{"prompt": "q", "completion": " ok", "label": true}"# + "\n" + line + "\n").write(toFile: path, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try Dataset(unpairedAt: path, tokenizer: ByteTokenizer(), maxLength: 256), line) { error in
                XCTAssertTrue("\(error)".hasPrefix("\(path):2: ") && "\(error)".contains(message), "\(line): \(error)")
            }
        }
    }

    func testArgumentsAndTheirRefusals() {
        func message(_ args: [String: String]) -> String {
            do { _ = try ObjectiveRegistry.make(name: "kto", args: args); return "" } catch { return "\(error)" }
        }
        XCTAssertEqual(try ObjectiveRegistry.resolvedArguments(name: "kto", args: [:]),
                       ["beta": "0.1", "loss_type": "kto", "desirable_weight": "1.0", "undesirable_weight": "1.0", "kl_pairing": "step"])
        XCTAssertEqual(try ObjectiveRegistry.resolvedArguments(name: "kto", args: ["loss_type": "apo_zero_unpaired"])["kl_pairing"], nil)
        XCTAssertTrue(message(["kl_pairing": "random"]).contains("objective kto: unknown kl_pairing random; known: step, fixed"))
        XCTAssertTrue(message(["kl_pairing": "fixed", "loss_type": "apo_zero_unpaired"])
            .contains("objective kto: kl_pairing chooses the mismatched pairs of the KL term, which loss_type=apo_zero_unpaired does not have"))
        XCTAssertEqual((try? ObjectiveRegistry.make(name: "kto", args: ["kl_pairing": "fixed"]) as? KTOObjective)?.klPairing, .fixed)
        XCTAssertTrue(message(["loss_type": "sigmoid"]).contains("unknown loss_type sigmoid; known: kto, apo_zero_unpaired"))
        XCTAssertTrue(message(["beta": "0"]).contains("beta must be > 0"))
        XCTAssertTrue(message(["desirable_weight": "-1"]).contains("desirable_weight must be finite and ≥ 0"))
        XCTAssertTrue(message(["label_smoothing": "0.1"]).contains("label_smoothing"))
        let apo = try? ObjectiveRegistry.make(name: "kto", args: ["loss_type": "apo_zero_unpaired"])
        XCTAssertEqual(apo?.requirements.statisticsPass, false)
        XCTAssertEqual((try? ObjectiveRegistry.make(name: "kto", args: [:]))?.requirements.statisticsPass, true)
        // TRL's advice on unbalanced labels (KTO paper, Eq. 8).
        let kto = try! KTOObjective()
        XCTAssertNil(kto.balanceNote(desirable: 10, undesirable: 10))
        XCTAssertTrue(kto.balanceNote(desirable: 10, undesirable: 30)?.contains("desirable_weight in [3.0, 3.99] or undesirable_weight in [0.25, 0.33]") == true)
        XCTAssertNil(try! KTOObjective(desirableWeight: 3.5).balanceNote(desirable: 10, undesirable: 30))
        // One label with no row: no weight helps (TRL's advice counts it as one row), at any weight.
        for w: Float in [1, 40] {
            XCTAssertEqual(try! KTOObjective(desirableWeight: w).balanceNote(desirable: 0, undesirable: 38),
                           "note: kto: every training row is undesirable (0 desirable, 38 undesirable): the desirable term never trains, and no desirable_weight or undesirable_weight can balance the labels (the KTO paper's Eq. 8, arXiv 2402.01306, weighs both kinds)")
        }
        XCTAssertTrue(kto.balanceNote(desirable: 5, undesirable: 0)?.contains("every training row is desirable (5 desirable, 0 undesirable): the undesirable term never trains") == true)
    }
}
