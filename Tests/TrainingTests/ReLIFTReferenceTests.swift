import Foundation
import XCTest
@testable import Training

/// ReLIFT's SFT step and scored-data (offline) GRPO against an independent PyTorch computation
/// (`scripts/make-relift-references`, autograd for dL/dlogits), through the real trainer step at
/// several splits over ranks and micro-batches; ReLIFT's RL step against TRL's dr_grpo fixture.
final class ReLIFTReferenceTests: XCTestCase {
    struct Fixture: Decodable {
        struct Example: Decodable { var ids: [Int32]; var loss_mask: [UInt8] }
        struct LossCase: Decodable { var loss: Double; var grad: [[Double]] }
        struct ScoredCase: Decodable { var loss_type: String; var loss: Double; var grad: [[Double]] }
        struct AdvantageCase: Decodable { var expected: [String: [Double]] }
        var vocab: Int, seq_len: Int, max_completion_length: Int
        var examples: [Example]
        var current: [[Float]]
        var sft: LossCase
        var scored_advantages: [String: [Double]]
        var advantage_cases: [AdvantageCase]
        var scored: [ScoredCase]
    }

    static let fixture: Fixture = referenceFixture("relift-reference.json")

    /// The fixture's raw scored rows (strings and integers as groups), as the JSONL reader sees them.
    static func rawRows(_ path: [String]) -> [[String: Any]] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/relift-reference.json")
        var v: Any = try! JSONSerialization.jsonObject(with: Data(contentsOf: url))
        for key in path { v = (v as! [String: Any])[key]! }
        return v as! [[String: Any]]
    }

    static func scores(_ raw: [[String: Any]], _ scaling: RewardScaling) throws -> [ScoredRows.Score] {
        var rows: [Int: ScoredRow] = [:]
        for (i, fields) in raw.enumerated() { rows[i + 1] = try ScoredRows.parse(fields).get() }
        let s = try ScoredRows.scores(rows, scaling: scaling, path: "fixture.jsonl")
        return (1...raw.count).map { s[$0]! }
    }

    func testScoredAdvantagesMatchPyTorchForEveryScaling() throws {
        let cases = [(Self.rawRows(["scored_rows"]), Self.fixture.scored_advantages)]
            + zip((Self.rawRows(["advantage_cases"]) as [[String: Any]]).map { $0["rows"] as! [[String: Any]] },
                  Self.fixture.advantage_cases.map(\.expected)).map { ($0, $1) }
        for (raw, expected) in cases {
            for scaling in RewardScaling.allCases {
                let got = try Self.scores(raw, scaling).map(\.advantage)
                let want = expected[scaling.rawValue]!
                XCTAssertEqual(got.count, want.count)
                for (g, w) in zip(got, want) { XCTAssertEqual(Double(g), w, accuracy: 1e-6 * max(1, abs(w)), "\(scaling): \(got) vs \(want)") }
            }
        }
    }

    func harness(_ producer: @escaping (Dataset) -> StepProducer) -> TrainerHarness {
        let f = Self.fixture
        let examples = f.examples.enumerated().map { i, e in
            Example(fixture: e.ids, lossMask: e.loss_mask, source: "ref:\(i)")
        }
        var h = TrainerHarness(examples: examples, positions: f.seq_len, vocab: f.vocab, current: f.current.flatMap { $0 })
        h.makeProducer = producer
        let maxCompletion = f.max_completion_length
        h.configureObjective = { o in
            (o as? GRPOObjective)?.maxCompletionLength = maxCompletion
            (o as? ReLIFTObjective)?.rl.maxCompletionLength = maxCompletion
        }
        return h
    }

    func assertMatches(_ h: TrainerHarness, _ objective: String, _ args: [String: String], loss: Double, grad: [[Double]],
                       file: StaticString = #filePath, line: UInt = #line) throws {
        for (ranks, micro) in [(1, 2), (1, 6), (3, 1), (2, 3)] {
            var h = h
            h.microBatchSize = micro
            let got = try h.run(objective, args, ranks: ranks)[0]
            let label = "\(objective) \(args) at \(ranks) rank(s), micro-batches of \(micro)"
            XCTAssertEqual(got.loss, loss, accuracy: 2e-6 * max(1, abs(loss)), "\(label): loss", file: file, line: line)
            let expected = grad.flatMap { $0 }
            let scale = expected.map(abs).max() ?? 0
            XCTAssertGreaterThan(scale, 1e-3, label, file: file, line: line)
            XCTAssertEqual(got.gradient.count, expected.count, "\(label): dL/dlogits entries", file: file, line: line)
            var worst = 0.0
            for (g, e) in zip(got.gradient, expected) { worst = max(worst, abs(Double(g) - e) - (1e-5 * scale + 1e-4 * abs(e))) }
            XCTAssertLessThanOrEqual(worst, 0, "\(label): dL/dlogits", file: file, line: line)
        }
    }

    /// Scored rows train as rollouts without behaviour log-probs: ratio 1 to the detached current
    /// log-probs, every aggregation as TRL's with old = logp.detach().
    func testScoredDataMatchesTRLWithDetachedLogProbsAtAnySplit() throws {
        let scores = try Self.scores(Self.rawRows(["scored_rows"]), .group)
        XCTAssertEqual(Set(Self.fixture.scored.map(\.loss_type)), Set(GRPOObjective.LossType.allCases.map(\.rawValue)))
        for c in Self.fixture.scored {
            let h = harness { d in ScoredDataProducer(examples: d.examples, scores: scores,
                                                      sampler: UniformSampler(datasetSize: d.count, batchSize: d.count, seed: 7)) }
            // luspo is GSPO's sequence-level term (the only level it takes).
            try assertMatches(h, "grpo", ["loss_type": c.loss_type].merging(c.loss_type == "luspo" ? ["importance_sampling_level": "sequence"] : [:]) { $1 },
                              loss: c.loss, grad: c.grad)
        }
    }

    /// An SFT step (every sequence a demonstration) is the token-mean NLL of the whole step.
    func testReLIFTSFTStepMatchesPyTorch() throws {
        let n = Self.fixture.examples.count
        let h = harness { d in FixedRolloutProducer(examples: d.examples, advantages: [Float](repeating: 1, count: n),
                                                    behaviour: [[Float]](repeating: [], count: n),
                                                    origins: [SequenceOrigin](repeating: .demonstration, count: n)) }
        try assertMatches(h, "relift", [:], loss: Self.fixture.sft.loss, grad: Self.fixture.sft.grad)
    }

    /// An RL step is grpo's loss at ReLIFT's defaults (dr_grpo, ε = 0.2): TRL's dr_grpo fixture.
    func testReLIFTRLStepIsTRLsDrGRPO() throws {
        let grpo = GRPOReferenceTests.fixture
        let c = grpo.configurations.first { $0.args["loss_type"] == "dr_grpo" && $0.args["beta"] == "0.0" && $0.args["epsilon_high"] == "0.2" }!
        let examples = grpo.examples.enumerated().map { i, e in
            Example(fixture: e.ids, lossMask: e.loss_mask, source: "ref:\(i)")
        }
        var h = TrainerHarness(examples: examples, positions: grpo.seq_len, vocab: grpo.vocab, current: grpo.logits.current.flatMap { $0 })
        let advantages = grpo.examples.map(\.advantage), behaviour = grpo.examples.map(\.behaviour)
        h.makeProducer = { FixedRolloutProducer(examples: $0.examples, advantages: advantages, behaviour: behaviour) }
        h.configureObjective = { ($0 as? ReLIFTObjective)?.rl.maxCompletionLength = grpo.max_completion_length }
        try assertMatches(h, "relift", [:], loss: c.loss, grad: c.grad)
    }
}
