import Distributed
import Foundation
import XCTest
@testable import Models
@testable import TensorCore
@testable import Training

/// tpo (`ObjectiveRegistry.makeTPO`: triples of chosen, rejected and gold answers, no reference
/// model) through the real trainer, against TRL 1.16's own `TPOTrainer._compute_loss` with
/// autograd for dL/dlogits (`scripts/make-tpo-references`), at one and several ranks and
/// micro-batch sizes; and the triples as the data reader and the step batch make them.
final class TPOObjectiveTests: XCTestCase {
    struct Fixture: Decodable {
        struct Reference: Decodable {
            var loss_type: String, beta: Double, label_smoothing: Double, tpo_alpha: Double, tpo_l_gamma: Double
            var loss: Double, grad: [[Double]], figures: [String: Double]
        }
        var vocab: Int, seq_len: Int
        var examples: [DPOTests.Fixture.Example], golds: [DPOTests.Fixture.Example]
        var logits: [[Float]]
        var references: [Reference]
    }

    static let fixture: Fixture = referenceFixture("tpo-reference.json")

    /// Pair i at examples 2i, 2i + 1 with its gold answer on 2i (`Example.gold`), as
    /// `Dataset(pairsAt:)` reads a triple; none at tpo_alpha 0, where the reader reads none.
    static func harness(microBatchSize: Int, golds: Bool) -> TrainerHarness {
        let f = Self.fixture
        var examples = f.examples.enumerated().map { i, e in Example(fixture: e.ids, lossMask: e.loss_mask, source: "triple:\(i / 2)") }
        if golds {
            for (i, g) in f.golds.enumerated() { examples[2 * i].gold = GoldAnswer(Example(fixture: g.ids, lossMask: g.loss_mask, source: "gold:\(i)")) }
        }
        var h = TrainerHarness(examples: examples, positions: f.seq_len, vocab: f.vocab, current: f.logits.flatMap { $0 }, microBatchSize: microBatchSize)
        h.tableSequences = f.examples.count + f.golds.count
        return h
    }

    static func arguments(_ ref: Fixture.Reference) -> [String: String] {
        var args = ["beta": "\(ref.beta)", "loss_type": ref.loss_type, "tpo_alpha": "\(ref.tpo_alpha)"]
        if ["sigmoid", "tpo-l"].contains(ref.loss_type) { args["label_smoothing"] = "\(ref.label_smoothing)" }
        if ref.loss_type == "tpo-l" { args["tpo_l_gamma"] = "\(ref.tpo_l_gamma)" }
        return args
    }

    /// Loss within 2e-6 relative, each of TRL's figures within 1e-5, each gradient entry within
    /// 1e-5 of the largest plus 1e-4 of itself (float32 trainer against float64 TRL code).
    func testLossGradientAndFiguresMatchTRL() throws {
        let refs = Self.fixture.references
        XCTAssertEqual(Set(refs.map(\.loss_type)), ["sigmoid", "hinge", "ipo", "tpo-l"], "a reference per loss type")
        XCTAssertTrue(refs.contains { $0.tpo_alpha == 0 } && refs.contains { $0.tpo_alpha != 0 && $0.tpo_alpha != 1 }, "tpo_alpha 0 and another weight")
        for ref in refs {
            let args = Self.arguments(ref)
            for (ranks, micro) in [(1, 12), (1, 1), (2, 3), (3, 2)] {
                let label = "tpo \(args) at \(ranks) rank(s), micro-batches of \(micro)"
                let got = try Self.harness(microBatchSize: micro, golds: ref.tpo_alpha != 0).run("tpo", args, ranks: ranks)[0]
                XCTAssertEqual(got.loss, ref.loss, accuracy: 2e-6 * max(1, abs(ref.loss)), "\(label): loss")
                XCTAssertEqual(ref.figures.count, 10, label)
                for (key, want) in ref.figures {
                    XCTAssertEqual(got.diagnostics[key] ?? .nan, want, accuracy: 1e-5 * max(1, abs(want)), "\(label): \(key)")
                }
                assertGradientMatchesReference(got.gradient, ref.grad, label)
            }
        }
    }

    /// A triple's three sequences are one unit of the step batch (one rank, one micro-batch), so
    /// triples deal over ranks as pairs do; pairs without gold answers deal as before.
    func testATripleIsOneUnit() {
        var examples = Self.fixture.examples.enumerated().map { i, e in Example(fixture: e.ids, lossMask: e.loss_mask, source: "t:\(i)") }
        let plain = PairProducer.batch(step: 0, pairs: [2, 0, 1], examples: examples)
        XCTAssertEqual(plain.units, [[0, 1], [2, 3], [4, 5]])
        for i in [0, 2] { examples[2 * i].gold = GoldAnswer(examples[2 * i + 1]) }
        let batch = PairProducer.batch(step: 0, pairs: [2, 0, 1], examples: examples)
        XCTAssertEqual(batch.sequences.map(\.pairRole), [.chosen, .rejected, .gold, .chosen, .rejected, .gold, .chosen, .rejected])
        XCTAssertEqual(batch.sequences.map(\.pair), [1, 0, 0, 4, 3, 3, 7, 6])
        XCTAssertEqual(batch.sequences[2].ids, examples[5].ids)
        XCTAssertEqual(batch.units, [[0, 1, 2], [3, 4, 5], [6, 7]])
        // The wire keeps the role (a resumed generation, a broadcast batch).
        var w = WireWriter(); batch.write(to: &w)
        var r = WireReader(w.bytes)
        XCTAssertEqual(StepBatch(from: &r), batch)
    }

    /// The reader takes TRL's `"reference"` column after an explicit prompt or, without one,
    /// after the prompt `"chosen"` and `"rejected"` share (`ImplicitPrompt.gold`), and refuses
    /// a row without it, an empty one, and one that does not begin with that prompt.
    func testTheReaderTakesTheGoldAnswer() throws {
        func gold(_ line: String) -> Result<PairRecord, JSONLReader.LineProblem> {
            PairReader.parseLine(ArraySlice(line.utf8), readsGold: true)
        }
        XCTAssertEqual(try gold(#"{"prompt": "1+1=", "chosen": "2", "rejected": "3", "reference": "2."}"#).get().gold,
                       .promptCompletion(prompt: "1+1=", completion: "2."))
        XCTAssertEqual(try gold(#"{"chosen": "Q: 1+1? A: 2", "rejected": "Q: 1+1? A: 3", "reference": "Q: 1+1? A: two"}"#).get().gold,
                       .promptCompletion(prompt: "Q: 1+1? A:", completion: " two"))
        let turn = { (role: String, text: String) in #"{"role": "\#(role)", "content": "\#(text)"}"# }
        let conversation = { (answer: String) in "[\(turn("user", "hi")), \(turn("assistant", answer))]" }
        let record = try gold(#"{"chosen": \#(conversation("hello")), "rejected": \#(conversation("bye")), "reference": \#(conversation("hey"))}"#).get()
        XCTAssertEqual(record.gold, .messages([ChatMessage(role: .user, content: "hi"), ChatMessage(role: .assistant, content: "hey")]))
        XCTAssertEqual(try gold(#"{"prompt": [\#(turn("user", "hi"))], "chosen": [\#(turn("assistant", "a"))], "rejected": "b", "reference": \#(turn("assistant", "c"))}"#).get().gold,
                       .messages([ChatMessage(role: .user, content: "hi"), ChatMessage(role: .assistant, content: "c")]))
        // Read only when asked: dpo's pairs leave the column.
        XCTAssertNil(try PairReader.parseLine(ArraySlice(#"{"prompt": "a", "chosen": "b", "rejected": "c", "reference": "d"}"#.utf8)).get().gold)
        for (line, why) in [(#"{"prompt": "a", "chosen": "b", "rejected": "c"}"#, #"missing field "reference""#),
                            (#"{"prompt": "a", "chosen": "b", "rejected": "c", "reference": ""}"#, "empty reference"),
                            (#"{"prompt": "a", "chosen": "b", "rejected": "c", "reference": 3}"#, #"field "reference" must be a string"#),
                            (#"{"chosen": "ab", "rejected": "ac", "reference": "xb"}"#, "reference does not begin with the prompt"),
                            (#"{"chosen": "ab", "rejected": "ac", "reference": "a"}"#, "empty reference after the prompt"),
                            (#"{"chosen": \#(conversation("x")), "rejected": \#(conversation("y")), "reference": [\#(turn("user", "HI")), \#(turn("assistant", "z"))]}"#,
                             #"reference must be the 1 prompt turn of "chosen" and "rejected""#)] {
            guard case .failure(let problem) = gold(line) else { XCTFail("accepted: \(line)"); continue }
            XCTAssertTrue(problem.reason.contains(why), "\(line): \(problem.reason)")
        }
    }

    /// `Dataset(pairsAt:readsGold:)` keeps each triple's gold answer on its chosen example, counts a
    /// conversation by its pair's two sides, matches held-out answers against the gold one, and
    /// drops a triple whose gold answer, cut from the left, keeps less of the prompt than its pair.
    func testTheDatasetKeepsATripleWhole() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tpo-\(UUID().uuidString).jsonl").path
        let long = String(repeating: "four ", count: 30)
        let rows = [#"{"prompt": "1+1=", "chosen": "2", "rejected": "3", "reference": "two"}"#,
                    #"{"prompt": "2+2=", "chosen": "4", "rejected": "5", "reference": "\#(long)"}"#,
                    #"{"prompt": [{"role": "user", "content": "hi"}], "chosen": "hello", "rejected": "bye!!", "reference": "hey"}"#]
        try rows.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let whole = try Dataset(pairsAt: path, tokenizer: ByteTokenizer(), maxLength: 512, truncation: .left, readsGold: true)
        XCTAssertEqual(whole.pairCount, 3)
        XCTAssertEqual(whole.report.unit, "triples")
        XCTAssertEqual(whole.report.conversations, 2, "the pair's two sides, not the gold answer")
        XCTAssertEqual(whole.examples.map { $0.gold != nil }, [true, false, true, false, true, false])
        XCTAssertEqual(whole.chosenOnly.examples.map(\.answer), ["two", long, "hey"], "exact match against the gold answers")
        XCTAssertEqual(whole.examples[0].answer, "2", "the chosen example keeps its own answer")
        let longest = whole.examples[2].gold!.ids.count
        XCTAssertGreaterThan(longest, whole.examples[4].gold!.ids.count)
        let cut = try Dataset(pairsAt: path, tokenizer: ByteTokenizer(), maxLength: longest - 3, truncation: .left, readsGold: true)
        XCTAssertEqual(cut.chosenOnly.examples.map(\.answer), ["two", "hey"])
        XCTAssertEqual(cut.report.droppedSplitPrompts, 1)
        // Without readsGold the column is not read: pairs as dpo's.
        let pairs = try Dataset(pairsAt: path, tokenizer: ByteTokenizer(), maxLength: 512, truncation: .left)
        XCTAssertTrue(pairs.examples.allSatisfy { $0.gold == nil })
        XCTAssertEqual(pairs.chosenOnly.examples.map(\.answer), ["2", "4", "hello"])
    }
}
