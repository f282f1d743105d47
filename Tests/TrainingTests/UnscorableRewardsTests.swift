import Foundation
import XCTest
@testable import Models
@testable import Training

/// Rewards a reward function leaves out: a `--reward command` scorer's `null` line (TRL 1.16's
/// reward function returning None). Against TRL's own code, executed on each case by
/// `scripts/make-unscorable-references`: grpo's advantages (sum_then_normalize under every
/// scale_rewards, normalize_then_sum), rloo's (the leave-one-out baseline over scored siblings,
/// normalised or not, clipped), and the logged reward figures (nanmean, nanstd). An unscorable
/// rollout (no function scored it) has advantage exactly 0.
final class UnscorableRewardsTests: XCTestCase {
    struct Fixture: Decodable {
        struct GRPOCase: Decodable { var aggregation: String; var scale_rewards: String; var advantages: [Double] }
        struct RLOOCase: Decodable { var normalize: Bool; var clip: [Double]?; var advantages: [Double] }
        struct Case: Decodable {
            var name: String; var rewards: [[Double?]]; var weights: [Double]; var group_size: Int
            var figures: [String: Double?]; var grpo: [GRPOCase]; var rloo: [RLOOCase]
            /// nil (TRL's None) as NaN, as the command scorer gives it.
            var matrix: [[Double]] { rewards.map { $0.map { $0 ?? .nan } } }
        }
        var cases: [Case]
    }

    static let fixture: Fixture = referenceFixture("unscorable-rewards-reference.json")

    func testTheFixtureHasUnscorableRolloutsAndGroupsWithOneScoredRollout() {
        let c = Self.fixture.cases
        XCTAssertEqual(c.count, 3)
        let unscorable = c.map { k in RewardAggregation.weightedSum(k.matrix, weights: k.weights).filter(\.isNaN).count }
        XCTAssertEqual(unscorable, [10, 0, 6])
    }

    func testGRPOAdvantagesMatchTRL() throws {
        for c in Self.fixture.cases {
            XCTAssertEqual(c.grpo.count, 4)
            for g in c.grpo {
                let aggregation = try XCTUnwrap(RewardAggregation(rawValue: g.aggregation))
                let scaling = try XCTUnwrap(RewardScaling(rawValue: g.scale_rewards))
                let got = aggregation.advantages(c.matrix, weights: c.weights, groupSize: c.group_size, scaling: scaling)
                assertAdvantagesClose(got.advantages, g.advantages, "\(c.name) \(g.aggregation) \(g.scale_rewards)", zeroBelow: 0)
            }
        }
    }

    func testRLOOAdvantagesMatchTRL() {
        for c in Self.fixture.cases {
            let total = RewardAggregation.weightedSum(c.matrix, weights: c.weights)
            let zeros = [Double](repeating: 0, count: total.count)
            for r in c.rloo {
                let got = LeaveOneOutAdvantages(rewards: total, kl: zeros, tokens: zeros, beta: 0, groupSize: c.group_size,
                                                normalize: r.normalize, clip: r.clip.map { $0[0]...$0[1] })
                assertAdvantagesClose(got.advantages, r.advantages, "\(c.name) rloo normalize \(r.normalize) clip \(r.clip ?? [])", zeroBelow: 0)
            }
        }
    }

    /// The step's figures as TRL logs them, over the values each function gave; and
    /// `frac_reward_zero_std`, the share of groups whose advantages are all 0 — with fewer than
    /// two scored rollouts a group is one (TRL's nanstd is NaN there, and it does not count it).
    func testLoggedFiguresLeaveTheNullsOut() throws {
        for c in Self.fixture.cases {
            let functions = c.weights.indices.map { f in
                RewardFunction(name: "r\(f)", scorer: try! FormatScorer(args: [:]), weight: Float(c.weights[f]), needsReference: false)
            }
            let n = c.rewards[0].count
            let sequences = (0..<n).map { i -> StepSequence in
                var s = RolloutProducer.sequence(prompt: [1], generation: Generation(ids: [2], logProbs: [-1, -1], finish: .stop, text: nil),
                                                 stopId: 0, example: i / c.group_size)
                s.rewards = c.matrix.map { Float($0[i]) }
                return s
            }
            for aggregation in RewardAggregation.allCases {
                let rows = Dictionary(uniqueKeysWithValues: RolloutMetrics.rows(sequences, rewards: functions, groupSize: c.group_size,
                                                                                stopIds: [0], aggregation: aggregation))
                for (key, want) in c.figures {
                    let got = try XCTUnwrap(rows[key], "\(c.name): \(key)")
                    if let want { XCTAssertEqual(got, want, accuracy: 1e-6 * max(1, abs(want)), "\(c.name) \(key)") } else { XCTAssertTrue(got.isNaN, "\(c.name) \(key): \(got)") }
                }
                let adv = aggregation.advantages(c.matrix, weights: c.weights, groupSize: c.group_size, scaling: .group).advantages
                let groups = n / c.group_size
                let silent = (0..<groups).filter { k in adv[(k * c.group_size)..<((k + 1) * c.group_size)].allSatisfy { $0 == 0 } }.count
                XCTAssertEqual(rows["frac_reward_zero_std"], Double(silent) / Double(groups), "\(c.name) \(aggregation)")
            }
            // accuracy: of the rollouts the first function scored, the share it gave ≥ 1.
            let first = c.matrix[0].filter { !$0.isNaN }
            let rows = Dictionary(uniqueKeysWithValues: RolloutMetrics.rows(sequences, rewards: functions, groupSize: c.group_size, stopIds: [0]))
            XCTAssertEqual(rows["accuracy"], Double(first.filter { $0 >= 1 }.count) / Double(first.count), c.name)
        }
    }

    /// SRFT's groups (G rollouts and the demonstration) leave an unscored demonstration out as a rollout.
    func testGroupedDemonstrationsLeaveAnUnscoredOneOut() {
        let rollouts: [Double] = [1, 0, 0.5, 1, 0, 1], demonstrations: [Double] = [.nan, 1]
        let got = GroupedDemonstrations.advantages(rollouts: rollouts, demonstrations: demonstrations, groupSize: 3, scaling: .group)
        let plain = GroupAdvantages(rewards: [1, 0, 0.5], groupSize: 3, scaling: .group).advantages
        XCTAssertEqual(Array(got.rollouts[0..<3]), plain, "the group without its unscored demonstration")
        XCTAssertEqual(got.demonstrations[0], 0)
        XCTAssertNotEqual(got.demonstrations[1], 0)
    }

    /// SuperHF: a completion no function scored is not eligible, and not in `superhf_reward_mean`;
    /// a prompt whose finished completions all came back null adds no row.
    func testSuperHFPassesOverAnUnscoredCompletion() throws {
        let tokenizer = ByteTokenizer()
        let prompts = (0..<2).map { i in
            SelfTrainPrompt(example: ChatFormat.promptCompletion(prompt: "q\(i) =", completion: "", source: "u:\(i + 1)", tokenizer: tokenizer),
                            index: -1, tokenizer: tokenizer, reference: nil)!
        }
        // p0s0 would be the best, were it scored.
        let cmd = #"while IFS= read -r l; do case "$l" in *p0s1*) echo 0.5;; *p0s2*) echo 0.2;; *) echo null;; esac; done"#
        let rewards = try RewardFunction.forRollouts(specs: ["command"], args: ["cmd": cmd])
        let samples = (0..<2).map { i in
            (0..<3).map { j in RoundSample(ids: tokenizer.encodePlain("p\(i)s\(j)"), text: "p\(i)s\(j)", logProbs: [], finished: true) }
        }
        var recipe = Recipe()
        recipe.selfTrain = "superhf"; recipe.selfTrainArgs = ["k": "3", "top_k": "1"]
        let round = SuperHFRound(candidates: prompts, options: try SelfTrainOptions(recipe: recipe), rewards: rewards, scoring: nil, seed: 1)
        let (outcome, records) = try round.decide(round: 0, prompts: prompts, samples: samples)
        XCTAssertEqual(outcome.rows, [prompts[0].row(answer: samples[0][1].ids)])
        XCTAssertEqual(records[0]["best"] as? [Int], [1])
        XCTAssertEqual(records[1]["best"] as? [Int], [])
        let figures = Dictionary(uniqueKeysWithValues: outcome.metrics)
        XCTAssertEqual(figures["superhf_reward_mean"] ?? .nan, 0.35, accuracy: 1e-6)
    }

    func item(_ completion: String, _ source: String) -> ScoringItem {
        ScoringItem(prompt: "p", completion: completion, reference: nil, source: source)
    }

    /// `null` or `None` is no reward for a rollout reward (NaN) and an error for any other scorer;
    /// a NaN score stays an error everywhere.
    func testACommandsNullIsNoRewardOnlyForARolloutReward() throws {
        let cmd = "cat >/dev/null; echo 1; echo null; echo ' None '"
        let items = [item("a", "d.jsonl:1"), item("b", "d.jsonl:2"), item("c", "d.jsonl:3")]
        let reward = try XCTUnwrap(RewardFunction.forRollouts(specs: ["command"], args: ["cmd": cmd]).first)
        let got = try reward.scorer.score(items)
        XCTAssertEqual(got[0], 1)
        XCTAssertTrue(got[1].isNaN && got[2].isNaN, "\(got)")
        let matrix = RolloutScoring.score(items, with: [reward])
        XCTAssertNil(matrix.error)
        XCTAssertEqual(RolloutScoring.weightedSum(matrix, weights: [1], count: 3).filter(\.isNaN).count, 2)

        XCTAssertThrowsError(try ScorerRegistry.make(name: "command", args: ["cmd": cmd]).score(items)) {
            XCTAssertTrue("\($0)".contains("line 2 of its output is null (no score) for d.jsonl:2; this scorer must judge every answer"), "\($0)")
        }
        // A --self-train-scorer is made from the reward names too, and must judge every answer.
        XCTAssertThrowsError(try SelfTrainScoring(name: "command", rewardArgs: ["command.cmd": cmd]).accepts(items)) {
            XCTAssertTrue("\($0)".contains("line 2 of its output is null (no score) for d.jsonl:2"), "\($0)")
        }
        let nan = try XCTUnwrap(RewardFunction.forRollouts(specs: ["command"], args: ["cmd": "cat >/dev/null; echo 1; echo nan; echo 1"]).first)
        XCTAssertTrue(RolloutScoring.score(items, with: [nan]).error?.contains("line 2 of its output is \"nan\", not a finite number") == true)
    }
}
