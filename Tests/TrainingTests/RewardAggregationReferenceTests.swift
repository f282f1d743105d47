import Foundation
import XCTest
import Models
@testable import Training

/// `multi_objective_aggregation` against TRL 1.16's own aggregation block of
/// `GRPOTrainer._generate_and_score_completions`, executed on each case by
/// `scripts/make-reward-aggregation-references`: normalize_then_sum (each function z-scored in
/// its group, the weighted sum scaled by the batch's std; GDPO) and sum_then_normalize under
/// every `scale_rewards`, on the same reward matrices; SRFT's groups with the demonstration;
/// and `frac_reward_zero_std`, which sft-dist counts per group where TRL's normalize_then_sum
/// logs whether the batch's std is 0.
final class RewardAggregationReferenceTests: XCTestCase {
    struct Fixture: Decodable {
        struct Case: Decodable {
            var name: String; var rewards: [[Double]]; var weights: [Double]; var group_size: Int
            var aggregation: String; var scale_rewards: String
            var advantages: [Double]; var frac_reward_zero_std: Double
        }
        var cases: [Case]
    }

    static let fixture: Fixture = referenceFixture("reward-aggregation-reference.json")


    func testAdvantagesMatchTRL() throws {
        XCTAssertEqual(Set(Self.fixture.cases.map(\.aggregation)), ["normalize_then_sum", "sum_then_normalize"])
        for c in Self.fixture.cases {
            let aggregation = try XCTUnwrap(RewardAggregation(rawValue: c.aggregation))
            let scaling = try XCTUnwrap(RewardScaling(rawValue: c.scale_rewards))
            let got = aggregation.advantages(c.rewards, weights: c.weights, groupSize: c.group_size, scaling: scaling)
            assertAdvantagesClose(got.advantages, c.advantages, "\(c.name) \(c.aggregation) \(c.scale_rewards)")
        }
    }

    /// normalize_then_sum reads no scale_rewards (the script checked TRL does not either).
    func testNormalizeThenSumIgnoresTheScaling() {
        for c in Self.fixture.cases where c.aggregation == "normalize_then_sum" {
            let each = RewardScaling.allCases.map {
                RewardAggregation.normalizeThenSum.advantages(c.rewards, weights: c.weights, groupSize: c.group_size, scaling: $0).advantages
            }
            XCTAssertTrue(each.allSatisfy { $0 == each[0] }, c.name)
        }
    }

    /// GDPO's case: equal weighted sums of unequal parts (the fixture's second group: 1·r_1 +
    /// 0.5·r_2 is 1 for every rollout). sum_then_normalize gives the group nothing;
    /// normalize_then_sum gives it (1 − 0.5)·z_1 before the batch scaling, and does not count it
    /// as silent. (With equal weights the two z's would cancel: r_2 is then affine in r_1.)
    func testEqualSumsOfUnequalPartsCarryASignalOnlyWhenNormalisedApart() throws {
        let c = try XCTUnwrap(Self.fixture.cases.first { $0.name == "two-functions" && $0.aggregation == "normalize_then_sum" })
        let group2 = 4..<8
        let sums = RewardAggregation.weightedSum(c.rewards, weights: c.weights)
        XCTAssertEqual(Set(sums[group2]), [1], "the fixture's second group: every weighted sum is 1")
        let apart = RewardAggregation.normalizeThenSum.advantages(c.rewards, weights: c.weights, groupSize: 4, scaling: .group)
        let summed = RewardAggregation.sumThenNormalize.advantages(c.rewards, weights: c.weights, groupSize: 4, scaling: .group)
        XCTAssertEqual(Array(summed.advantages[group2]), [0, 0, 0, 0])
        XCTAssertTrue(apart.advantages[group2].allSatisfy { abs($0) > 0.1 }, "\(apart.advantages)")
        XCTAssertGreaterThan(apart.advantages[4], 0, "the rollout with r_1 = 1 is above its group")
        XCTAssertEqual(summed.zeroStdGroups, 2)
        XCTAssertEqual(apart.zeroStdGroups, 1)
    }

    /// A silent group gets exactly 0 where TRL's (s − mean_B) leaves mean_B's rounding residue:
    /// here the z's of the other groups sum to 1e-17, not 0, in Double.
    func testASilentGroupIsExactlyZero() {
        let rewards: [[Double]] = [[0.1, 0.7, 0.3, 0.5, 0.5, 0.5, 0.9, 0.2, 0.35], [0.3, 0.3, 0.1, 1, 1, 1, 0.6, 0.25, 0.15]]
        let weights = [1.0, 0.7]
        var z = [Double](repeating: 0, count: 9)
        for (r, w) in zip(rewards, weights) {
            for k in [0, 2] {
                let x = r[(3 * k)..<(3 * k + 3)], m = x.reduce(0, +) / 3
                for i in x.indices { z[i] += w * (r[i] - m) / (GroupAdvantages.besselStd(x) + GroupAdvantages.epsilon) }
            }
        }
        XCTAssertNotEqual(z.reduce(0, +), 0, "the case has a residue to leave out")
        let a = RewardAggregation.normalizeThenSum.advantages(rewards, weights: weights, groupSize: 3, scaling: .group)
        XCTAssertEqual(Array(a.advantages[3..<6]), [0, 0, 0])
        XCTAssertEqual(a.zeroStdGroups, 1)
    }

    /// SRFT's groups: G rollouts and the prompt's demonstration, each function z-scored over the
    /// G + 1 and the batch std over rollouts and demonstrations alike (the fixture's case is laid
    /// out that way: three rollouts, then the demonstration, per group of four).
    func testGroupedDemonstrationsAggregateOverTheirGroups() throws {
        for c in Self.fixture.cases where c.name == "grouped-demonstrations" {
            let g = c.group_size - 1, prompts = c.rewards[0].count / c.group_size
            let rollouts = c.rewards.map { r in (0..<prompts).flatMap { k in r[(k * (g + 1))..<(k * (g + 1) + g)] } }
            let demonstrations = c.rewards.map { r in (0..<prompts).map { k in r[k * (g + 1) + g] } }
            let got = GroupedDemonstrations.advantages(rollouts: rollouts, demonstrations: demonstrations, weights: c.weights, groupSize: g,
                                                       scaling: try XCTUnwrap(RewardScaling(rawValue: c.scale_rewards)),
                                                       aggregation: try XCTUnwrap(RewardAggregation(rawValue: c.aggregation)))
            let want = (0..<prompts).map { k in Array(c.advantages[(k * (g + 1))..<(k * (g + 1) + g)]) }
            assertAdvantagesClose(got.rollouts, want.flatMap { $0 }, "\(c.aggregation) \(c.scale_rewards): rollouts")
            assertAdvantagesClose(got.demonstrations, (0..<prompts).map { c.advantages[$0 * (g + 1) + g] }, "\(c.aggregation) \(c.scale_rewards): demonstrations")
        }
    }

    /// `frac_reward_zero_std`: the share of groups whose advantages are 0. Under
    /// normalize_then_sum those are the groups where every function's rewards are equal; TRL
    /// logs whether the batch std is 0 there, which agrees when every group or none is silent.
    func testFracRewardZeroStdCountsTheSilentGroups() throws {
        for c in Self.fixture.cases {
            let aggregation = try XCTUnwrap(RewardAggregation(rawValue: c.aggregation))
            let functions = c.weights.indices.map { f in
                RewardFunction(name: "r\(f)", scorer: try! FormatScorer(args: [:]), weight: Float(c.weights[f]), needsReference: false)
            }
            let sequences = c.rewards[0].indices.map { i -> StepSequence in
                var s = RolloutProducer.sequence(prompt: [1], generation: Generation(ids: [2], logProbs: [-1, -1], finish: .stop, text: nil),
                                                 stopId: 0, example: i / c.group_size)
                s.rewards = c.rewards.map { Float($0[i]) }
                return s
            }
            let rows = Dictionary(uniqueKeysWithValues: RolloutMetrics.rows(sequences, rewards: functions, groupSize: c.group_size,
                                                                            stopIds: [0], aggregation: aggregation))
            let silent = c.advantages.count / c.group_size - (0..<(c.advantages.count / c.group_size)).filter { k in
                c.advantages[(k * c.group_size)..<((k + 1) * c.group_size)].contains { abs($0) > 1e-12 }
            }.count
            let label = "\(c.name) \(c.aggregation) \(c.scale_rewards)"
            XCTAssertEqual(rows["frac_reward_zero_std"] ?? .nan, Double(silent) / Double(c.advantages.count / c.group_size), label)
            let got = aggregation.advantages(c.rewards, weights: c.weights, groupSize: c.group_size,
                                             scaling: try XCTUnwrap(RewardScaling(rawValue: c.scale_rewards)))
            XCTAssertEqual(Double(got.zeroStdGroups) / Double(c.advantages.count / c.group_size), rows["frac_reward_zero_std"] ?? .nan, label)
            // TRL's own figure where it is a share of groups (group, none) or all-or-nothing.
            if c.scale_rewards != "batch" && (silent == 0 || silent == c.advantages.count / c.group_size) {
                XCTAssertEqual(rows["frac_reward_zero_std"] ?? .nan, c.frac_reward_zero_std, label)
            }
        }
    }
}

/// Advantages against TRL's to 1e-6 relative (TRL's nanstd takes its Bessel factor in float32);
/// TRL's zeros, and values within `zeroBelow` of 0 (its rounding residue of a silent group,
/// 1e-17), are exactly 0 here. (`zeroBelow` 0 where a rollout that carries no signal of its own
/// keeps the batch mean's residue in both, as normalize_then_sum's rollout scored only by
/// functions with a single score.)
func assertAdvantagesClose(_ got: [Float], _ want: [Double], _ label: String, zeroBelow: Double = 1e-12,
                           file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(got.count, want.count, label, file: file, line: line)
    for (i, (g, w)) in zip(got, want).enumerated() {
        XCTAssertEqual(Double(g), w, accuracy: 1e-6 * max(1, abs(w)), "\(label) rollout \(i)", file: file, line: line)
        if w == 0 || abs(w) < zeroBelow { XCTAssertEqual(g, 0, "\(label) rollout \(i): exactly 0", file: file, line: line) }
    }
}
