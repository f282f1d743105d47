import Foundation
import Distributed
import Models
import TestSupport
import XCTest
@testable import Training

/// The rollout pieces on their own: the `rewards:` list, reward functions and their argument
/// routing, the format reward, prompts from a file and their truncation, and how a rollout
/// becomes a training sequence.
final class RolloutUnitTests: XCTestCase {
    func testRewardsListInYAMLAndFlagsAndRoundTrip() throws {
        let r = try Recipe.parse(yaml: "objective: grpo\nrewards:\n  - exact\n  - regex=0.2\nreward_args:\n  regex.pattern: '^ \\d'\n", source: "r.yaml")
        XCTAssertEqual(r.rewards, ["exact", "regex=0.2"])
        XCTAssertEqual(try Recipe.parse(yaml: "rewards: task\n", source: "r.yaml").rewards, ["task"])
        XCTAssertEqual(try Recipe.parse(yaml: r.yaml, source: "again.yaml").rewards, ["exact", "regex=0.2"])
        XCTAssertThrowsError(try Recipe.parse(yaml: "rewards: [exact, regex=x]\n", source: "r.yaml")) { e in
            XCTAssertTrue("\(e)".hasPrefix("r.yaml:1: rewards must be reward functions"), "\(e)")
        }
        // A scorer's refusal of its arguments names the recipe's line, as objective_args' do.
        let bad = try Recipe.parse(yaml: "objective: grpo\nrewards: [regex]\nreward_args:\n  regex.pattern: \"[\"\n", source: "r.yaml")
        XCTAssertThrowsError(try bad.validate()) { e in XCTAssertTrue("\(e)".hasPrefix("r.yaml:3: scorer regex: invalid pattern"), "\(e)") }
        let typo = try Recipe.parse(yaml: "objective: grpo\nrewards: [format]\nreward_args:\n  format.patern: x\n", source: "r.yaml")
        XCTAssertThrowsError(try typo.validate()) { e in XCTAssertTrue("\(e)".hasPrefix("r.yaml:3: reward format: unknown argument \"patern\""), "\(e)") }
        XCTAssertThrowsError(try Recipe.parse(yaml: "objective: grpo\nrewards: [format, exact=two]\n", source: "r.yaml").validate()) { e in
            XCTAssertTrue("\(e)".hasPrefix("r.yaml:2: rewards must be reward functions"), "\(e)")
        }
        var f = Recipe()
        try Recipe.key(named: "rewards")!.read(flag: "exact", into: &f)
        try Recipe.key(named: "rewards")!.read(flag: "format=0.5", into: &f)
        XCTAssertEqual(f.rewards, ["exact", "format=0.5"])
    }

    func testRewardFunctionsWeightsAndArgumentRouting() throws {
        let fs = try RewardFunction.make(specs: ["exact", "regex=0.2"], args: ["regex.pattern": "^ [0-9]", "exact.ignore_case": "true"])
        XCTAssertEqual(fs.map(\.name), ["exact", "regex"])
        XCTAssertEqual(fs.map(\.weight), [1, 0.2])
        XCTAssertEqual(fs.map(\.needsReference), [true, false])
        let item = ScoringItem(prompt: "p", completion: " 7", reference: " 7", source: "d:1")
        XCTAssertEqual(try fs[1].scorer.score([item, ScoringItem(prompt: "p", completion: "x7", reference: nil, source: "d:2")]), [1, 0])
        // One function: unprefixed keys are its own.
        XCTAssertEqual(try RewardFunction.make(specs: ["regex"], args: ["pattern": "a"]).count, 1)
        XCTAssertThrowsError(try RewardFunction.make(specs: ["exact", "exact=2"], args: [:]))
        XCTAssertThrowsError(try RewardFunction.make(specs: ["regex"], args: ["regex.nope": "1"]))
    }

    func testFormatRewardMatchesTheWholeCompletion() throws {
        let plain = try FormatScorer(args: [:])
        func s(_ c: String, _ f: FormatScorer) throws -> Float { try f.score([ScoringItem(prompt: "", completion: c, reference: nil, source: "x")])[0] }
        XCTAssertEqual(try s(" 68", plain), 1)
        XCTAssertEqual(try s("   ", plain), 0)
        XCTAssertEqual(try s(" 68\nadd 1 2", plain), 0)
        let tagged = try FormatScorer(args: ["pattern": "<a>.*</a>"])
        XCTAssertEqual(try s("<a>x</a>", tagged), 1)
        XCTAssertEqual(try s("<a>x</a> more", tagged), 0, "anchored at the end, unlike regex")
    }

    func testPromptsFileRowsAndTruncation() throws {
        let dir = try makeTemporaryDirectory("rollout-prompts")
        let path = dir + "/p.jsonl"
        try """
        {"prompt": "add 1 2 =", "completion": " 3"}
        {"prompt": "reverse abcdef ="}
        {"messages": [{"role": "user", "content": "hi"}]}
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}

        """.write(toFile: path, atomically: true, encoding: .utf8)
        let tok = ByteTokenizer()
        let prompts = try RolloutPrompts.fromFile(path, tokenizer: tok, template: .chatml).prompts
        XCTAssertEqual(prompts.map(\.reference), [" 3", nil, nil, "yo"])
        XCTAssertEqual(prompts.map(\.source), ["\(path):1", "\(path):2", "\(path):3", "\(path):4"])
        XCTAssertEqual(tok.decode(prompts[0].ids), "add 1 2 =")
        XCTAssertEqual(prompts[2].ids, prompts[3].ids, "a final assistant turn is the reference, not the prompt")
        let cut = try RolloutPrompts.fit(prompts, limit: 5, truncation: .left, origin: path)
        XCTAssertEqual(tok.decode(cut[0].ids), "1 2 =")
        XCTAssertEqual(try RolloutPrompts.fit(prompts, limit: 5, truncation: .right, origin: path).map { $0.ids.count }.max(), 5)
        XCTAssertThrowsError(try RolloutPrompts.fit(prompts, limit: 3, truncation: .drop, origin: path))
        XCTAssertThrowsError(try RolloutPrompts.checkReferences(prompts, rewards: try RewardFunction.make(specs: ["exact"], args: [:]))) {
            XCTAssertTrue("\($0)".contains("\(path):2: reward exact needs a reference answer"), "\($0)")
        }
    }

    /// A stopped rollout trains on its stop token too; one cut at the limit has none. The
    /// sampler's log-probs sit under the tokens they belong to, 0 on the prompt.
    func testRolloutSequenceLayout() {
        let stopped = RolloutProducer.sequence(prompt: [5, 6], generation: Generation(ids: [7, 8], logProbs: [-0.1, -0.2, -0.3], finish: .stop, text: nil),
                                               stopId: 0, example: 3)
        XCTAssertEqual(stopped.ids, [5, 6, 7, 8, 0])
        XCTAssertEqual(stopped.lossMask, [0, 0, 1, 1, 1])
        XCTAssertEqual(stopped.behaviourLogProbs, [0, 0, -0.1, -0.2, -0.3])
        XCTAssertEqual(stopped.origin, .rollout)
        XCTAssertEqual(stopped.example, 3)
        let cut = RolloutProducer.sequence(prompt: [5], generation: Generation(ids: [7, 8], logProbs: [-0.1, -0.2], finish: .length, text: nil),
                                           stopId: 0, example: 0)
        XCTAssertEqual(cut.ids, [5, 7, 8])
        XCTAssertEqual(RolloutMetrics.rows([stopped, cut].map { var s = $0; s.rewards = [1]; return s },
                                           rewards: try! RewardFunction.make(specs: ["task"], args: [:]), groupSize: 2, stopIds: [0])
                        .first { $0.0 == "completions/clipped_ratio" }?.1, 0.5)
    }

    /// Several ids end a rollout (TRL's eos_token_ids): the one that did is its last trained
    /// token, and the completion metrics count it as stopped.
    func testARolloutEndsWithTheStopIdThatEndedIt() {
        var g = Generation(ids: [7], logProbs: [-0.1, -0.2], finish: .stop, text: nil)
        g.stopId = 9
        let other = RolloutProducer.sequence(prompt: [5], generation: g, stopId: 0, example: 0)
        XCTAssertEqual(other.ids, [5, 7, 9])
        let plain = RolloutProducer.sequence(prompt: [5], generation: Generation(ids: [7], logProbs: [-0.1, -0.2], finish: .stop, text: nil),
                                             stopId: 0, example: 0)
        XCTAssertEqual(plain.ids, [5, 7, 0], "no recorded id: the data's own")
        let rows = RolloutMetrics.rows([other, plain].map { var s = $0; s.rewards = [1]; return s },
                                       rewards: try! RewardFunction.make(specs: ["task"], args: [:]), groupSize: 2, stopIds: [0, 9])
        XCTAssertEqual(rows.first { $0.0 == "completions/clipped_ratio" }?.1, 0)
        // Across ranks (ShardedGeneration) the id travels with the generation.
        var w = WireWriter()
        Generations([g, Generation(ids: [1], logProbs: [-1], finish: .length, text: nil)]).write(to: &w)
        var r = WireReader(w.bytes)
        XCTAssertEqual(Generations(from: &r).items.map(\.stopId), [9, nil])
    }

    /// A generation spanning k steps gives each the mean loss tokens of its steps (TRL's dapo
    /// normaliser), and the step batch carries it across ranks; one step of its own, none.
    func testGenerationLossTokensPerStep() {
        let gen = { (n: Int) in Generation(ids: [Int32](repeating: 7, count: n), logProbs: [Float](repeating: -1, count: n + 1), finish: .stop, text: nil) }
        // Completions of 2, 3, 4 and 6 tokens, each + the stop token: 3 + 4 + 5 + 7 = 19 loss tokens.
        let rollouts = [2, 3, 4, 6].map { RolloutProducer.sequence(prompt: [5], generation: gen($0), stopId: 0, example: 0) }
        XCTAssertEqual(RolloutProducer.lossTokensPerStep(rollouts[...], steps: 2), 9.5)
        XCTAssertEqual(RolloutProducer.lossTokensPerStep(rollouts[...], steps: 4), 4.75)
        XCTAssertNil(RolloutProducer.lossTokensPerStep(rollouts[...], steps: 1))
        for perStep in [9.5, nil] {
            var batch = StepBatch(step: 3, sequences: Array(rollouts.prefix(2)))
            batch.lossTokensPerStep = perStep
            var w = WireWriter()
            batch.write(to: &w)
            var r = WireReader(w.bytes)
            XCTAssertEqual(StepBatch(from: &r), batch)
        }
    }

    /// Every rollout figure TRL's GRPOTrainer logs, on four rollouts worked by hand: lengths
    /// 2, 3 (cut at the limit), 1, 3; rewards (task, format × 0.5) (1, 1), (0, 1), (1, 0), (1, 0),
    /// so Σ w·r = 1.5, 0.5, 1, 1 in groups of two (the second group's rewards are equal).
    func testRolloutMetricsByHand() throws {
        func rollout(_ generated: [Int32], stops: Bool, _ rewards: [Float]) -> StepSequence {
            let logProbs = [Float](repeating: -1, count: generated.count + (stops ? 1 : 0))
            var s = RolloutProducer.sequence(prompt: [5], generation: Generation(ids: generated, logProbs: logProbs, finish: stops ? .stop : .length, text: nil),
                                             stopId: 0, example: 0)
            s.rewards = rewards
            return s
        }
        let batch = [rollout([7], stops: true, [1, 1]), rollout([7, 8, 9], stops: false, [0, 1]),
                     rollout([], stops: true, [1, 0]), rollout([7, 8], stops: true, [1, 0])]
        let rows = Dictionary(uniqueKeysWithValues: RolloutMetrics.rows(batch, rewards: try RewardFunction.make(specs: ["task", "format=0.5"], args: [:]),
                                                                        groupSize: 2, stopIds: [0]))
        let want: [String: Double] = [
            "reward": 1, "reward_std": (0.5 / 3).squareRoot(),
            "rewards/task/mean": 0.75, "rewards/task/std": 0.5, "rewards/format/mean": 0.5, "rewards/format/std": (1.0 / 3).squareRoot(),
            "accuracy": 0.75, "frac_reward_zero_std": 0.5,
            "completions/mean_length": 2.25, "completions/min_length": 1, "completions/max_length": 3, "completions/clipped_ratio": 0.25,
            "completions/mean_terminated_length": 2, "completions/min_terminated_length": 1, "completions/max_terminated_length": 3,
        ]
        XCTAssertEqual(Set(rows.keys), Set(want.keys))
        for (key, value) in want { XCTAssertEqual(rows[key] ?? .nan, value, accuracy: 1e-12, key) }
        // None stopped: TRL logs 0 for the terminated lengths.
        let cut = Dictionary(uniqueKeysWithValues: RolloutMetrics.rows([batch[1], batch[1]], rewards: try RewardFunction.make(specs: ["task", "format=0.5"], args: [:]),
                                                                       groupSize: 2, stopIds: [0]))
        XCTAssertEqual(cut["completions/mean_terminated_length"], 0)
        XCTAssertEqual(cut["completions/max_terminated_length"], 0)
        XCTAssertEqual(cut["completions/clipped_ratio"], 1)
    }

    /// The generation buffer survives a checkpoint bit for bit (state words round trip).
    func testGenerationStateRoundTrips() throws {
        let settings = try RolloutSettings(rollouts: 2, batchSize: 2, temperature: 1, topP: 1, maxCompletionLength: 4,
                                           stepsPerGeneration: 1, scaling: .group, seed: 9)
        let prompts = [RolloutPrompt(ids: [1, 2], reference: nil, source: "x:1")]
        let rewards = try RewardFunction.make(specs: ["task"], args: [:])
        let a = RolloutProducer(settings: settings, prompts: prompts, rewards: rewards, stopId: 0)
        var s1 = RolloutProducer.sequence(prompt: [1, 2], generation: Generation(ids: [3], logProbs: [-0.5, -1.25], finish: .stop, text: nil), stopId: 0, example: 0)
        s1.rewards = [1]; s1.advantage = 0.7071; s1.group = 4
        var s2 = s1; s2.advantage = -0.7071; s2.behaviourLogProbs[2] = .nan
        a.generation = (2, [s1, s2])
        let b = RolloutProducer(settings: settings, prompts: prompts, rewards: rewards, stopId: 0)
        try b.restoreState(a.saveState(), step: 5)
        XCTAssertEqual(b.generation?.index, 2)
        XCTAssertEqual(b.generation?.sequences.first, s1)
        XCTAssertEqual(b.generation?.sequences.last?.behaviourLogProbs[2].bitPattern, Float.nan.bitPattern)
    }

    /// A reward function that returns a non-finite value stops the run with a message naming
    /// the example, whichever scorer it is (the external one refuses "nan" itself).
    func testNonFiniteRewardIsAnErrorNamingTheExample() {
        final class Broken: Scorer {
            let name = "broken"
            func score(_ items: [ScoringItem]) throws -> [Float] { items.indices.map { $0 == 1 ? .infinity : 1 } }
        }
        let items = (0..<3).map { ScoringItem(prompt: "p", completion: "c", reference: nil, source: "d.jsonl:\($0 + 1)") }
        let m = RolloutScoring.score(items, with: [RewardFunction(name: "broken", scorer: Broken(), weight: 1, needsReference: false)])
        XCTAssertEqual(m.error, "d.jsonl:2: reward broken is inf for a rollout of this prompt; rewards must be finite")
        let ok = RolloutScoring.score(items, with: try! RewardFunction.make(specs: ["format=0.5", "regex"], args: ["regex.pattern": "c"]))
        XCTAssertNil(ok.error)
        XCTAssertEqual(RolloutScoring.weightedSum(ok, weights: [0.5, 1], count: 3), [1.5, 1.5, 1.5])
    }
}
