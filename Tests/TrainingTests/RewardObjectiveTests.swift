import Foundation
import XCTest
import Models
import TensorCore
@testable import Training

/// reward against TRL 1.16's own `RewardTrainer.compute_loss` (`scripts/make-reward-references`:
/// five pairs' rewards, with and without a margin and the centring term, and differences of ±40),
/// read from a [N, 1] score per position as the trainer hands it over, whole and split.
final class RewardObjectiveTests: XCTestCase {
    struct Case: Decodable {
        var name: String
        var rewards_chosen: [Float]; var rewards_rejected: [Float]
        var margin: [Float]?; var center_rewards_coefficient: Double?
        var loss: Double; var grad_chosen: [Double]; var grad_rejected: [Double]
        var metrics: [String: Double]
    }
    struct Fixture: Decodable { var cases: [Case] }
    static let fixture: Fixture = referenceFixture("reward-reference.json")

    /// Pair k as sequences 2k (chosen) and 2k + 1 (rejected) of `length` tokens, each ending in
    /// the trailing pad the data gets (`Dataset.withTrailingPad`), after `trailingPads` more pads
    /// that the reward skips; the score rows hold junk except at each sequence's reward row.
    func input(_ c: Case, length: Int = 4, pad: Int32 = 9, trailingPads: Int = 1, pairs: Range<Int>? = nil,
               logits: inout [Float]) -> (ObjectiveInput, rewardRows: [Int]) {
        let P = c.rewards_chosen.count
        var sequences: [StepSequence] = []
        for k in 0..<P {
            for role in [PairRole.chosen, .rejected] {
                let ids = (0..<length).map { Int32(($0 + k) % 5) } + [Int32](repeating: pad, count: trailingPads)
                var s = StepSequence(example: sequences.count, origin: .demonstration, ids: ids,
                                     lossMask: [UInt8](repeating: 1, count: ids.count), promptLength: 1)
                s.pair = sequences.count ^ 1; s.pairRole = role
                if role == .chosen { s.margin = c.margin?[k] ?? 0 }
                sequences.append(s)
            }
        }
        let mine = Array((pairs ?? 0..<P).flatMap { [2 * $0, 2 * $0 + 1] })
        let rowsPer = length + trailingPads - 1
        var sequenceId: [Int32] = [], rewardRows: [Int] = []
        logits = []
        var rng = RNG(seed: 3)
        for s in mine {
            for t in 0..<rowsPer {
                sequenceId.append(Int32(s))
                let isReward = t == length - 1
                if isReward { rewardRows.append(logits.count) }
                let k = s / 2
                logits.append(isReward ? (s % 2 == 0 ? c.rewards_chosen[k] : c.rewards_rejected[k]) : rng.normal() * 5)
            }
        }
        let n = sequenceId.count
        let context = StepContext(step: 0, totalSteps: 1, globalLossTokens: 0, globalSequences: 2 * P)
        let inp = logits.withUnsafeBufferPointer { l in
            ObjectiveInput(rows: n, vocab: 1, logits: l.baseAddress!, targets: [Int32](repeating: 0, count: n),
                           mask: [Float](repeating: 1, count: n), sequenceLossTokens: [Float](repeating: 1, count: n),
                           sequenceId: sequenceId, context: context, sequences: sequences)
        }
        return (inp, rewardRows)
    }

    func objective(_ c: Case, pad: Int32? = 9) throws -> RewardObjective {
        let o = try RewardObjective(centerRewardsCoefficient: c.center_rewards_coefficient)
        o.padTokenId = pad
        return o
    }

    /// Loss within 1e-6 relative, each reward's gradient within 1e-6 of TRL's float64 autograd
    /// and nothing on the other rows, TRL's accuracy, margin and mean_reward; the same summed
    /// over two micro-batches of whole pairs.
    func testLossGradientAndFiguresMatchTRL() throws {
        XCTAssertEqual(Self.fixture.cases.count, 6)
        for c in Self.fixture.cases {
            let o = try objective(c)
            var logits: [Float] = []
            let (inp, rewardRows) = input(c, logits: &logits)
            var grad = [Float](repeating: 0, count: inp.rows)
            let r = logits.withUnsafeBufferPointer { _ in grad.withUnsafeMutableBufferPointer { o.lossAndGradient(inp, dlogits: $0.baseAddress!) } }
            XCTAssertEqual(r.loss, c.loss, accuracy: 1e-6 * max(1, abs(c.loss)), c.name)
            let expected = zip(c.grad_chosen, c.grad_rejected).flatMap { [$0, $1] }
            for (i, row) in rewardRows.enumerated() { XCTAssertEqual(Double(grad[row]), expected[i], accuracy: 1e-6, "\(c.name): reward \(i)") }
            XCTAssertEqual(grad.enumerated().filter { !rewardRows.contains($0.offset) }.map(\.element).filter { $0 != 0 }, [], "\(c.name): other rows")
            for key in ["accuracy", "margin", "mean_reward"] {
                let mean = r.diagnostics[key]! / r.diagnosticCounts[key]!
                XCTAssertEqual(mean, c.metrics[key]!, accuracy: 1e-6 * max(1, abs(c.metrics[key]!)), "\(c.name): \(key)")
            }
            // Two micro-batches (pairs 0–1 and 2–4) add up to the whole.
            var total = 0.0
            for part in [0..<2, 2..<5] {
                var l: [Float] = []
                let (half, _) = input(c, pairs: part, logits: &l)
                var g = [Float](repeating: 0, count: half.rows)
                total += l.withUnsafeBufferPointer { _ in g.withUnsafeMutableBufferPointer { o.lossAndGradient(half, dlogits: $0.baseAddress!).loss } }
            }
            XCTAssertEqual(total, r.loss, accuracy: 1e-12 * max(1, abs(r.loss)), "\(c.name): split")
        }
    }

    /// Pads after the sequence's last token are skipped (transformers' last non-pad token: with
    /// GPT-2's pad = eos the reward sits before the eos); without a pad id the last input counts.
    func testRewardIsReadAtTheLastTokenThatIsNotPad() throws {
        let c = Self.fixture.cases[0]
        var logits: [Float] = []
        let (inp, rows) = input(c, trailingPads: 3, logits: &logits)
        var grad = [Float](repeating: 0, count: inp.rows)
        let r = logits.withUnsafeBufferPointer { _ in grad.withUnsafeMutableBufferPointer { try! objective(c).lossAndGradient(inp, dlogits: $0.baseAddress!) } }
        XCTAssertEqual(r.loss, c.loss, accuracy: 1e-6)
        XCTAssertTrue(rows.allSatisfy { grad[$0] != 0 })
        // No pad id: the last input, a pad here, holds junk — another loss.
        var g2 = [Float](repeating: 0, count: inp.rows)
        let unpadded = logits.withUnsafeBufferPointer { _ in g2.withUnsafeMutableBufferPointer { try! objective(c, pad: nil).lossAndGradient(inp, dlogits: $0.baseAddress!) } }
        XCTAssertNotEqual(unpadded.loss, c.loss, accuracy: 1e-3)
        XCTAssertEqual(SequenceScoreHead.rewardPosition([4, 5, 0, 0][...], pad: 0), 1)
        XCTAssertEqual(SequenceScoreHead.rewardPosition([0, 0, 0][...], pad: 0), 0, "all pad: transformers' argmax gives 0")
        XCTAssertEqual(SequenceScoreHead.rewardPosition([4, 5, 0][...], pad: nil), 2)
    }

    func testArgumentsAreChecked() {
        XCTAssertThrowsError(try ObjectiveRegistry.make(name: "reward", args: ["center_rewards_coefficient": "-1"]))
        XCTAssertThrowsError(try ObjectiveRegistry.make(name: "reward", args: ["beta": "0.1"]))
        XCTAssertNil((try? ObjectiveRegistry.make(name: "reward", args: [:]) as? RewardObjective)??.centerRewardsCoefficient)
    }
}
