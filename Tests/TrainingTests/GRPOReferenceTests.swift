import Foundation
import XCTest
import Models
@testable import Training

/// GRPO's advantages and every loss aggregation against TRL's `GRPOTrainer` written
/// independently in PyTorch (`scripts/make-grpo-references`, autograd for dL/dlogits). The
/// loss runs through the real trainer step on six rollouts of two groups with prompt tokens
/// out of the loss, at one rank in three micro-batches, at one rank in one, and at three
/// ranks (threads): the reference is the whole batch on one device, so agreement at every
/// split is the global-denominator property (the TRL / verl aggregation bugs).
final class GRPOReferenceTests: XCTestCase {
    struct Fixture: Decodable {
        struct AdvantageCase: Decodable { var rewards: [Double]; var group_size: Int; var expected: [String: [Double]]; var metrics: [String: Double] }
        struct Example: Decodable { var ids: [Int32]; var loss_mask: [UInt8]; var behaviour: [Float]; var advantage: Float }
        struct Logits: Decodable { var current: [[Float]]; var reference: [[Float]] }
        struct Configuration: Decodable {
            var args: [String: String]; var loss: Double; var grad: [[Double]]; var clip: [String: Double]?
            /// dapo's normaliser when the batch is one step of a generation of several.
            var loss_tokens_per_step: Double?
            /// A generation's first step: the old log-probs are the live ones (ratio exactly 1).
            var on_policy: Bool?
        }
        var vocab: Int, seq_len: Int, max_completion_length: Int
        var advantages: [AdvantageCase]
        var examples: [Example]
        var logits: Logits
        var configurations: [Configuration]
        var chord_expert: [Bool]
        var chord: [Configuration]
        struct Tempered: Decodable { var value: Double; var behaviour: [[Float]]; var configurations: [Configuration] }
        var temperature: Tempered
        struct Truncated: Decodable { var rollout: Int; var configurations: [Configuration] }
        var truncated: Truncated
    }

    static let fixture: Fixture = referenceFixture("grpo-reference.json")

    func testAdvantagesMatchTRLForEveryScaling() {
        for c in Self.fixture.advantages {
            for scaling in RewardScaling.allCases {
                let got = GroupAdvantages(rewards: c.rewards, groupSize: c.group_size, scaling: scaling)
                let want = c.expected[scaling.rawValue]!
                XCTAssertEqual(got.advantages.count, want.count, "\(c.rewards) \(scaling): advantages")
                for (g, w) in zip(got.advantages, want) {
                    XCTAssertEqual(Double(g), w, accuracy: 1e-6 * max(1, abs(w)), "\(c.rewards) \(scaling)")
                }
                let zero = stride(from: 0, to: c.rewards.count, by: c.group_size)
                    .filter { k in Set(c.rewards[k..<(k + c.group_size)]).count == 1 }.count
                XCTAssertEqual(got.zeroStdGroups, zero, "\(c.rewards)")
            }
        }
    }

    /// The reward figures TRL logs for each case's generation: `reward_std` over every reward
    /// and, under group scaling, `frac_reward_zero_std`.
    func testRewardMetricsMatchTRL() throws {
        let task = try RewardFunction.make(specs: ["task"], args: [:])
        for c in Self.fixture.advantages {
            let sequences = c.rewards.enumerated().map { i, r in
                var s = RolloutProducer.sequence(prompt: [1], generation: Generation(ids: [2], logProbs: [-1, -1], finish: .stop, text: nil),
                                                 stopId: 0, example: i / c.group_size)
                s.rewards = [Float(r)]
                return s
            }
            let rows = Dictionary(uniqueKeysWithValues: RolloutMetrics.rows(sequences, rewards: task, groupSize: c.group_size, stopIds: [0]))
            XCTAssertEqual(c.metrics.count, 2)
            for (key, want) in c.metrics {
                XCTAssertEqual(rows[key] ?? .nan, want, accuracy: 1e-6, "\(c.rewards): \(key)")   // rewards are Float
            }
            XCTAssertEqual(rows["rewards/task/std"] ?? .nan, c.metrics["reward_std"]!, accuracy: 1e-6, "\(c.rewards): one function of weight 1")
        }
    }

    /// A zero-variance group gets exactly 0, even where r − mean would leave a rounding residue
    /// (three 0.1s: their mean in Double is 0.10000000000000002).
    func testZeroVarianceGroupIsExactlyZero() {
        let a = GroupAdvantages(rewards: [0.1, 0.1, 0.1, 1, 0, 0], groupSize: 3, scaling: .group)
        XCTAssertEqual(Array(a.advantages[0..<3]), [0, 0, 0])
        XCTAssertEqual(a.zeroStdGroups, 1)
        XCTAssertNotEqual(a.advantages[3], 0)
    }

    /// `truncated`: that rollout reached max_completion_length without an end token, and its
    /// loss mask is the producer's under mask_truncated_completions.
    func harness(origins: [SequenceOrigin]? = nil, lossTokensPerStep: Double? = nil, atTemperature tempered: Fixture.Tempered? = nil,
                 truncated: Int? = nil, onPolicy: Bool = false) -> TrainerHarness {
        let f = Self.fixture
        let examples = f.examples.enumerated().map { i, e in
            Example(ids: e.ids, lossMask: RolloutProducer.trainedMask(e.loss_mask, finish: i == truncated ? .length : .stop),
                    promptLength: e.loss_mask.firstIndex(of: 1) ?? 1, answer: nil, source: "ref:\(i)")
        }
        var h = TrainerHarness(examples: examples, positions: f.seq_len, vocab: f.vocab, current: f.logits.current.flatMap { $0 },
                               reference: f.logits.reference.flatMap { $0 }, microBatchSize: 2, totalSteps: 4)
        let advantages = f.examples.map(\.advantage), behaviour = tempered?.behaviour ?? f.examples.map(\.behaviour)
        h.rolloutTemperature = tempered?.value ?? 1
        h.makeProducer = {
            let p = FixedRolloutProducer(examples: $0.examples, advantages: advantages, behaviour: behaviour, origins: origins)
            p.lossTokensPerStep = lossTokensPerStep
            p.onPolicy = onPolicy
            return p
        }
        let maxCompletion = f.max_completion_length
        h.configureObjective = { ($0 as? GRPOObjective)?.maxCompletionLength = maxCompletion }
        return h
    }

    func testEveryAggregationMatchesTRLAtAnySplit() throws {
        XCTAssertEqual(Set(Self.fixture.configurations.map { $0.args["loss_type"]! }), Set(GRPOObjective.LossType.allCases.map(\.rawValue)))
        // On policy with a clip bound at 1 (ε = 0 on either side): torch passes half the gradient.
        XCTAssertEqual(Self.fixture.configurations.filter { $0.on_policy == true && ($0.args["epsilon"] == "0.0" || $0.args["epsilon_high"] == "0.0") }.count, 4)
        for c in Self.fixture.configurations {
            for (ranks, micro) in [(1, 2), (1, 6), (3, 1), (2, 3)] {
                let label = "\(c.args) at \(ranks) rank(s), micro-batches of \(micro)"
                try assertMatchesTRL(c, harness(lossTokensPerStep: c.loss_tokens_per_step, onPolicy: c.on_policy ?? false), ranks: ranks, micro: micro, label: label)
                // clip_ratio/low_mean, high_mean and region_mean, or cispo's cispo_clip_ratio, or none under
                // sapo; kl with β > 0; off_policy_mask_ratio with the off-policy mask.
                XCTAssertEqual(c.clip?.count, (["cispo": 1, "sapo": 0, "vespo": 1][c.args["loss_type"]!] ?? 3) + (c.args["beta"] != "0.0" ? 1 : 0)
                                              + (c.args["off_policy_mask_threshold"] != nil ? 1 : 0), label)
            }
        }
    }

    /// Configuration `c` through the trainer at `ranks` and micro-batches of `micro`: TRL's loss,
    /// gradient and figures (its kl: the mean of c1·k3 with use_bias_correction_kl, else of k3).
    func assertMatchesTRL(_ c: Fixture.Configuration, _ harness: TrainerHarness, ranks: Int, micro: Int, label: String) throws {
        var h = harness
        h.microBatchSize = micro
        let got = try h.run("grpo", c.args, ranks: ranks)[0]
        XCTAssertEqual(got.loss, c.loss, accuracy: 2e-6 * max(1, abs(c.loss)), "\(label): loss")
        assertGradientMatchesReference(got.gradient, c.grad, label)
        for (key, want) in c.clip ?? [:] {
            XCTAssertEqual(got.diagnostics[key] ?? .nan, want, accuracy: ["kl", "vespo/phi_seq_mean"].contains(key) ? 1e-6 : 1e-12, "\(label): \(key)")
        }
        if c.args["loss_type"] == "sapo" { XCTAssertNil(got.diagnostics["clip_ratio/region_mean"], "\(label): TRL logs no clip figure for sapo") }
    }

    /// TRL's mask_truncated_completions: one rollout reached max_completion_length without an
    /// end token and trains none of its tokens, while its advantage stays in its group; TRL's
    /// loss on the same batch at any split, every aggregation (grpo's and dr_grpo's B still
    /// count it; bnpo's and dapo's token counts do not).
    func testMaskedTruncatedRolloutsMatchTRLAtAnySplit() throws {
        let t = Self.fixture.truncated
        XCTAssertEqual(Set(t.configurations.map { $0.args["loss_type"]! }), Set(GRPOObjective.LossType.allCases.map(\.rawValue)))
        for c in t.configurations {
            for (ranks, micro) in [(1, 2), (3, 1), (2, 3)] {
                try assertMatchesTRL(c, harness(truncated: t.rollout), ranks: ranks, micro: micro,
                                     label: "\(c.args), rollout \(t.rollout) masked, at \(ranks) rank(s), micro-batches of \(micro)")
            }
        }
    }

    /// Rollouts sampled at τ = 0.7: TRL divides the policy's and the reference's logits by τ
    /// before every log-prob (and the entropy), and the sampler's log-probs are at τ; the
    /// gradient is of the raw logits (the model's output), (1/τ)·∂L/∂(z/τ).
    func testLogProbsAtTheRolloutTemperatureMatchTRL() throws {
        let t = Self.fixture.temperature
        XCTAssertEqual(t.value, 0.7)
        for c in t.configurations {
            for (ranks, micro) in [(1, 2), (3, 1)] {
                var h = harness(atTemperature: t)
                h.microBatchSize = micro
                let got = try h.run("grpo", c.args, ranks: ranks)[0]
                let label = "\(c.args) at τ \(t.value), \(ranks) rank(s), micro-batches of \(micro)"
                XCTAssertEqual(got.loss, c.loss, accuracy: 2e-6 * max(1, abs(c.loss)), "\(label): loss")
                assertGradientMatchesReference(got.gradient, c.grad, label)
                for (key, want) in c.clip ?? [:] {
                    XCTAssertEqual(got.diagnostics[key] ?? .nan, want, accuracy: ["kl", "entropy", "vespo/phi_seq_mean"].contains(key) ? 1e-5 : 1e-12, "\(label): \(key)")
                }
            }
        }
    }

    /// grpo's evaluation runs the objective on its held-out rollouts without an update
    /// (`Trainer.evaluateObjective`), as TRL's `prediction_step` computes its training loss on
    /// the eval rollouts: on the same rollouts it gives TRL's loss and figures, at any split,
    /// at temperature 1 and 0.7 (a generation of one step: dapo over the batch's tokens).
    func testTheEvaluationLossIsTRLsOnTheSameRollouts() throws {
        let f = Self.fixture
        let cases: [(Fixture.Tempered?, [Fixture.Configuration])] = [(nil, f.configurations.filter { $0.loss_tokens_per_step == nil }),
                                                                     (f.temperature, f.temperature.configurations)]
        XCTAssertGreaterThan(cases.map(\.1.count).reduce(0, +), 8)
        for (tempered, configurations) in cases {
            for c in configurations {
                for (ranks, micro) in [(1, 2), (3, 1)] {
                    var h = harness(atTemperature: tempered, onPolicy: c.on_policy ?? false)
                    h.microBatchSize = micro
                    let (got, progress) = try h.evaluate("grpo", c.args, ranks: ranks)
                    // Rank 0's share scaled to every rank's: all six rollouts at the end, in order.
                    XCTAssertEqual(progress.last, [6, 6], "\(progress)")
                    XCTAssertEqual(progress.map { $0[0] }, progress.map { $0[0] }.sorted(), "\(progress)")
                    let label = "\(c.args) at τ \(tempered?.value ?? 1), \(ranks) rank(s), micro-batches of \(micro)"
                    XCTAssertEqual(got.loss, c.loss, accuracy: 2e-6 * max(1, abs(c.loss)), "\(label): loss")
                    for (key, want) in c.clip ?? [:] {
                        XCTAssertEqual(got.figure(key) ?? .nan, want, accuracy: ["kl", "entropy", "vespo/phi_seq_mean"].contains(key) ? 1e-5 : 1e-12, "\(label): \(key)")
                    }
                }
            }
        }
    }

    /// ReLIFT's SFT steps train the demonstrations at temperature 1 whatever the rollouts'
    /// temperature (its code's `sft_update_policy`); its RL steps at the temperature.
    func testReLIFTSFTStepsStayAtTemperatureOne() throws {
        let t = Self.fixture.temperature
        let demonstrations = [SequenceOrigin](repeating: .demonstration, count: Self.fixture.examples.count)
        var plain = harness(origins: demonstrations), tempered = harness(origins: demonstrations, atTemperature: t)
        let sft = try plain.run("relift")[0], sftAtT = try tempered.run("relift")[0]
        XCTAssertEqual(sftAtT.loss, sft.loss, "an SFT step's loss")
        XCTAssertEqual(sftAtT.gradient, sft.gradient, "an SFT step's gradient")
        plain = harness(); tempered = harness(atTemperature: t)
        let rl = try plain.run("relift")[0], rlAtT = try tempered.run("relift")[0]
        XCTAssertNotEqual(rlAtT.loss, rl.loss, accuracy: 1e-3, "an RL step is at the temperature")
    }

    /// CHORD (Trinity-RFT's MIXCHORDPolicyLossFn) with two of the six sequences demonstrations,
    /// CHORD-φ and CHORD-μ, μ at step 1 of a cosine decay; per-type token counts are global.
    func testCHORDMatchesTrinityAtAnySplit() throws {
        let origins = Self.fixture.chord_expert.map { $0 ? SequenceOrigin.demonstration : .rollout }
        for c in Self.fixture.chord {
            for (ranks, micro) in [(1, 2), (1, 6), (3, 1), (2, 3)] {
                var h = harness(origins: origins)
                h.microBatchSize = micro
                let got = try h.run("chord", c.args, ranks: ranks)[0]
                let label = "chord \(c.args) at \(ranks) rank(s), micro-batches of \(micro)"
                XCTAssertEqual(got.loss, c.loss, accuracy: 2e-6 * max(1, abs(c.loss)), "\(label): loss")
                let expected = c.grad.flatMap { $0 }
                let scale = expected.map(abs).max() ?? 0
                var worst = 0.0
                XCTAssertEqual(got.gradient.count, expected.count, "\(label): dL/dlogits entries")
                for (g, e) in zip(got.gradient, expected) { worst = max(worst, abs(Double(g) - e) - (1e-5 * scale + 1e-4 * abs(e))) }
                XCTAssertLessThanOrEqual(worst, 0, "\(label): dL/dlogits")
                XCTAssertEqual(got.diagnostics["mu"] ?? .nan, 0.5 * 0.5 * (1 + cos(Double.pi / 4)) + 0.1, accuracy: 1e-6, label)
            }
        }
    }
}
