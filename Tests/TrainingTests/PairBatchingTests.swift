import Foundation
import XCTest
@testable import Distributed
@testable import Models
@testable import TensorCore
@testable import Training

/// Pairs through batching: a pair never splits between ranks or micro-batches (padded or
/// packed, any micro-batch size), its sequence log-prob sums are exact under packing (the
/// packed step's loss and gradient equal the padded step's), and bad pair rows name their line.
final class PairBatchingTests: XCTestCase {
    /// Six pairs of uneven lengths, tokenized from pair rows (prompt shared, answers differ).
    static func pairData(maxLength: Int = 40) throws -> Dataset {
        var lines: [String] = []
        for i in 0..<6 {
            let prompt = String(repeating: "q", count: 2 + i % 3) + "\(i)=", chosen = String(repeating: "a", count: 1 + i), rejected = "b\(i * 7)"
            lines.append(#"{"prompt": "\#(prompt)", "chosen": "\#(chosen)", "rejected": "\#(rejected)"}"#)
        }
        let path = NSTemporaryDirectory() + "pairs-\(UUID().uuidString).jsonl"
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return try Dataset(pairsAt: path, tokenizer: ByteTokenizer(), maxLength: maxLength, template: .chatml)
    }

    static func setup(_ data: Dataset, packing: Bool, microBatchSize: Int, model: LanguageModel? = nil) throws -> RunSetup {
        var recipe = Recipe()
        recipe.packing = packing; recipe.microBatchSize = microBatchSize; recipe.batchSize = data.pairCount
        recipe.maxLength = 40; recipe.objective = "dpo"; recipe.steps = 2
        recipe.lr = 1e-3; recipe.warmupSteps = 0; recipe.schedule = .constant; recipe.gradClip = 0
        let model = model ?? GPT2(config: GPT2Config(vocabSize: ByteTokenizer().vocabSize, contextLength: 40, embedDim: 8, layers: 1, heads: 2), seed: 3)
        let reference = model.makeReplica()
        reference.copyParameters(from: model)
        var rng = RNG(seed: 9)
        for i in 0..<reference.parameters.count { reference.parameters.values[i] += rng.normal() * 0.2 }
        return RunSetup(recipe: recipe, tokenizer: ByteTokenizer(), model: model, train: data, heldOut: data,
                        objective: try ObjectiveRegistry.make(name: "dpo", args: [:]), referenceModel: reference)
    }

    func testPairRowsLoadAsLinkedChosenAndRejected() throws {
        let data = try Self.pairData()
        XCTAssertEqual(data.pairCount, 6)
        let batch = PairProducer.batch(step: 0, pairs: [4, 1], examples: data.examples)
        XCTAssertEqual(batch.sequences.map(\.example), [8, 9, 2, 3])
        XCTAssertEqual(batch.sequences.map(\.pair), [1, 0, 3, 2])
        XCTAssertEqual(batch.sequences.map(\.pairRole), [.chosen, .rejected, .chosen, .rejected])
        XCTAssertEqual(batch.units, [[0, 1], [2, 3]])
        // Same prompt, different answers.
        let c = data.examples[8], r = data.examples[9]
        XCTAssertEqual(c.ids.prefix(c.promptLength), r.ids.prefix(r.promptLength))
        XCTAssertNotEqual(c.ids, r.ids)
    }

    /// The held-out split takes whole pairs: each half keeps a pair's chosen and rejected
    /// answers adjacent (chosen first), and every pair is in exactly one half.
    func testHeldOutSplitTakesWholePairs() throws {
        let data = try Self.pairData()
        let (train, held) = data.splitPairs(heldOutFraction: 0.34, seed: 5)
        XCTAssertEqual(held.pairCount, 2)
        XCTAssertEqual(held.count, 4)
        XCTAssertEqual(train.count, 2 * (data.pairCount - held.pairCount))
        func pairs(_ d: Dataset) -> [[Example]] { (0..<d.pairCount).map { [d.examples[2 * $0], d.examples[2 * $0 + 1]] } }
        let inTrain = pairs(train), inHeld = pairs(held)
        for i in 0..<data.pairCount {
            let pair = [data.examples[2 * i], data.examples[2 * i + 1]]
            XCTAssertNotEqual(inTrain.contains(pair), inHeld.contains(pair), "pair \(i): in exactly one of the halves, whole")
        }
        XCTAssertEqual(held.chosenOnly.examples, inHeld.map { $0[0] }, "the chosen answers, for generation")
    }

    func testPairsNeverSplitAcrossRanksOrMicroBatches() throws {
        let data = try Self.pairData()
        let batch = PairProducer.batch(step: 0, pairs: Array(0..<6), examples: data.examples)
        for packing in [false, true] {
            for micro in [1, 2, 3] {
                let trainer = Trainer(setup: try Self.setup(data, packing: packing, microBatchSize: micro), comm: LocalCommunicator())
                for size in [1, 2, 3, 4] {
                    var seen: [Int] = []
                    for rank in 0..<size {
                        let mine = RankShard(rank: rank, size: size).mine(batch.units)
                        for mb in trainer.microBatches(batch.sequences, units: mine) {
                            let members = Set(mb.rowExamples.flatMap { $0 })
                            for s in members { XCTAssertTrue(members.contains(batch.sequences[s].pair), "packing \(packing), micro \(micro), \(size) ranks: sequence \(s) without its pair") }
                            seen += members
                        }
                    }
                    XCTAssertEqual(seen.sorted(), Array(0..<12), "packing \(packing), micro \(micro), \(size) ranks: every sequence once")
                }
            }
        }
    }

    /// Packed rows hold several sequences; each sequence's log-prob sum must still be its own
    /// (segments reset attention and positions), so the step's loss and gradient norm match.
    func testPackedAndPaddedStepsAgree() throws {
        let data = try Self.pairData()
        var reports: [Trainer.StepReport] = []
        for packing in [false, true] {
            let trainer = Trainer(setup: try Self.setup(data, packing: packing, microBatchSize: 2), comm: LocalCommunicator())
            reports.append(trainer.step(0))
        }
        XCTAssertNotEqual(reports[0].loss, log(2), accuracy: 1e-4, "the reference must differ from the policy")
        XCTAssertEqual(reports[1].loss, reports[0].loss, accuracy: 1e-5 * reports[0].loss)
        XCTAssertEqual(reports[1].gradNorm, reports[0].gradNorm, accuracy: 1e-4 * reports[0].gradNorm)
    }

    /// TRL's `"margin"` column is read for a reward model only (`readsMargins`): under dpo, as
    /// under TRL's DPOTrainer, it is another column, whatever it holds.
    func testMarginsAreReadForRewardModelsOnly() throws {
        let path = NSTemporaryDirectory() + "margins-\(UUID().uuidString).jsonl"
        let rows = [#"{"prompt": "p", "chosen": "a", "rejected": "b", "margin": 1.5}"#, #"{"prompt": "p", "chosen": "a", "rejected": "c", "margin": "big"}"#]
        _ = FileManager.default.createFile(atPath: path, contents: Data(rows.joined(separator: "\n").utf8))
        XCTAssertEqual(try PairReader.read(path: path).pairs.map(\.pair.margin), [nil, nil])
        XCTAssertThrowsError(try PairReader.read(path: path, readsMargins: true)) {
            XCTAssertTrue("\($0)".hasSuffix(":2: field \"margin\" must be a number within float32's range (TRL's RewardTrainer margin)"), "\($0)")
        }
        XCTAssertEqual(try PairReader.read(path: path, skipBadLines: true, readsMargins: true).pairs.map(\.pair.margin), [1.5])
    }

    func testBadPairRowsNameTheirLine() throws {
        let rows = [#"{"prompt": "p", "chosen": "a", "rejected": "b"}"#,
                    #"{"prompt": "p", "chosen": "same", "rejected": "same"}"#,
                    #"{"prompt": "p", "chosen": "", "rejected": "b"}"#,
                    #"{"messages": [{"role": "user", "content": "hi"}], "chosen": {"role": "assistant", "content": "x"}, "rejected": [{"role": "assistant", "content": "y"}]}"#,
                    #"{"prompt": "p", "chosen": "a"}"#,
                    #"{"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}], "chosen": [{"role": "assistant", "content": "c"}], "rejected": "r"}"#]
        let bytes = Array(rows.joined(separator: "\n").utf8)
        func first(_ b: [UInt8]) -> String {
            let path = NSTemporaryDirectory() + "bad-pairs-\(UUID().uuidString).jsonl"
            _ = FileManager.default.createFile(atPath: path, contents: Data(b))
            do { _ = try PairReader.read(path: path); return "no error" } catch { return "\(error)".replacingOccurrences(of: path, with: "F") }
        }
        XCTAssertEqual(first(bytes), "F:2: chosen and rejected are identical")
        let path = NSTemporaryDirectory() + "bad-pairs-\(UUID().uuidString).jsonl"
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        let read = try PairReader.read(path: path, skipBadLines: true)
        XCTAssertEqual(read.pairs.map(\.line), [1, 4, 6])
        guard read.pairs.count == 3 else { return }
        XCTAssertEqual(read.skipped.map(\.description).map { $0.replacingOccurrences(of: path, with: "F") },
                       ["F:2: chosen and rejected are identical", "F:3: empty chosen", #"F:5: missing field "rejected""#])
        XCTAssertEqual(read.pairs[1].pair.chosen, .messages([ChatMessage(role: .user, content: "hi"), ChatMessage(role: .assistant, content: "x")]))
        XCTAssertEqual(read.pairs[1].pair.rejected, .messages([ChatMessage(role: .user, content: "hi"), ChatMessage(role: .assistant, content: "y")]))
        XCTAssertEqual(read.pairs[2].pair.rejected, .messages([ChatMessage(role: .system, content: "s"), ChatMessage(role: .user, content: "u"),
                                                                ChatMessage(role: .assistant, content: "r")]))
    }

    /// A pair whose answers differ only past the cut is the same sequence twice: DPO's loss is
    /// log 2 with no gradient on it (8 of 8 such pairs trained nothing, exit 0). Dropped and
    /// counted as the pairs that truncation breaks are.
    func testAPairMadeIdenticalByTheCutIsDropped() throws {
        let long = String(repeating: "p", count: 40)
        let rows = ["{\"prompt\": \"\(long)\", \"chosen\": \" the answer is 12\", \"rejected\": \" the answer is 13\"}",
                    "{\"prompt\": \"q\", \"chosen\": \" 12\", \"rejected\": \" 13\"}"]
        let path = NSTemporaryDirectory() + "cut-pairs-\(UUID().uuidString).jsonl"
        _ = FileManager.default.createFile(atPath: path, contents: Data(rows.joined(separator: "\n").utf8))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let set = try Dataset(pairsAt: path, tokenizer: ByteTokenizer(), maxLength: 50)
        XCTAssertEqual(set.pairCount, 1)
        XCTAssertEqual(set.report.droppedIdenticalPairs, 1)
        XCTAssertTrue(set.report.summary.contains("loaded 1 of 2 records") && set.report.summary.contains("dropped 1 whose chosen and rejected were the same once cut"),
                      set.report.summary)
        // Long enough to keep the difference: both pairs stay.
        XCTAssertEqual(try Dataset(pairsAt: path, tokenizer: ByteTokenizer(), maxLength: 64).pairCount, 2)
    }

    /// Left truncation cut only the longer side's prompt, so its answer was scored in another
    /// context than the other's, and the pair was kept (a hostile review): dropped whole now.
    func testAPairWhoseSidesKeepDifferentPromptsIsDropped() throws {
        let rows = ["{\"prompt\": \"a long enough prompt =\", \"chosen\": \" 1\", \"rejected\": \" b\(String(repeating: "y", count: 40))\"}",
                    "{\"prompt\": \"q\", \"chosen\": \" 12\", \"rejected\": \" 13\"}"]
        let path = NSTemporaryDirectory() + "left-pairs-\(UUID().uuidString).jsonl"
        _ = FileManager.default.createFile(atPath: path, contents: Data(rows.joined(separator: "\n").utf8))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let set = try Dataset(pairsAt: path, tokenizer: ByteTokenizer(), maxLength: 50, truncation: .left)
        XCTAssertEqual(set.pairCount, 1)
        XCTAssertEqual(set.report.droppedSplitPrompts, 1)
        XCTAssertTrue(set.report.summary.contains("dropped 1 whose sides kept different parts of their prompt once cut (left)"), set.report.summary)
        XCTAssertFalse(set.report.summary.contains("longer than"), set.report.summary)
        for i in 0..<set.pairCount {
            XCTAssertEqual(Dataset.context(of: set.examples[2 * i]), Dataset.context(of: set.examples[2 * i + 1]))
        }
        XCTAssertEqual(try Dataset(pairsAt: path, tokenizer: ByteTokenizer(), maxLength: 80, truncation: .left).pairCount, 2)
    }
}
