import Distributed
import Foundation
import XCTest
import TestSupport
import Models
import TensorCore
@testable import Training

/// The pieces of a checkpoint that can be tested without a run: the hash, the manifest's
/// verification, the recipe and config comparisons, and the non-finite-gradient policy.
final class CheckpointUnitTests: XCTestCase {
    private var dir: String!

    override func setUpWithError() throws {
        dir = try makeTemporaryDirectory("sft-dist-ckpt-unit")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// Reference values from the C library (libxxhash 0.8.1, XXH64) over bytes (31·i + 7) mod 251.
    func testXXHash64MatchesTheReferenceLibrary() {
        let vectors: [(Int, UInt64, UInt64)] = [
            (0, 0xef46db3751d8e999, 0x95584af7701f808d), (1, 0xa96c7f0ce858bbb7, 0x496fc29a1e753bd7),
            (3, 0x56e6957632a487f9, 0x94ff877cd86385be), (4, 0xc60d15b1e3ff8f04, 0x1034b01f61e3b2e6),
            (7, 0xafbefc3d6c6f9a8e, 0xd06aa9dbe7add6d1), (8, 0x3da5c7aa269683e0, 0x23befc2f0d90da1a),
            (12, 0x9650fde93a383e90, 0xfb99c710c71e0463), (31, 0x3391303d485e846e, 0xba688e0cb3457ba4),
            (32, 0x40b7aff75d45bbc8, 0x86720b4d63e89625), (33, 0x4997cae4951c17a5, 0xda6c6083e5e68c88),
            (63, 0x2944b4dafc69b206, 0x07481e5c14a5cc4b), (64, 0xbb76f6ef19bd5a1b, 0x499bc0ca95485902),
            (100, 0xf0b29a915621716d, 0xaabe5ae21d9730c6), (1000, 0x9e3300c1cde3c58d, 0x550faaf0a76ef8e9),
            (4099, 0x81751ee72efcff40, 0x40f6e7ce5fdf9e95),
        ]
        for (n, h0, h1) in vectors {
            let data = (0..<n).map { UInt8((31 * $0 + 7) % 251) }
            XCTAssertEqual(XXHash64.hash(data), h0, "length \(n), seed 0")
            XCTAssertEqual(XXHash64.hash(data, seed: 12345), h1, "length \(n), seed 12345")
            // Streaming in uneven pieces gives the same hash as one shot.
            var h = XXHash64(seed: 12345), i = 0, piece = 1
            while i < n { let j = min(n, i + piece); h.update(data[i..<j]); i = j; piece = piece * 3 % 37 + 1 }
            XCTAssertEqual(h.finalize(), h1, "length \(n), streamed")
        }
        XCTAssertEqual(XXHash64.hash(Array("abc".utf8)), 0x44bc2cf5ad770999)
    }

    private func write(_ rel: String, _ text: String) throws {
        let path = dir + "/" + rel
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: false, encoding: .utf8)
    }

    private func verifyError() -> String? {
        do { _ = try CheckpointManifest.verify(directory: dir); return nil } catch { return "\(error)" }
    }

    func testManifestVerifiesAndNamesWhatIsWrong() throws {
        try write("state.json", "{}"); try write("model/config.json", #"{"n_embd": 32}"#); try write("optimizer.safetensors", "abcdefgh")
        let m = try CheckpointManifest.make(directory: dir, step: 7)
        XCTAssertEqual(m.files.map(\.path), ["model/config.json", "optimizer.safetensors", "state.json"])
        try DurableFiles.write(m.encoded, to: dir + "/manifest.json")
        XCTAssertNil(verifyError())

        try write("optimizer.safetensors", "abcdefgX")          // same size, one byte changed
        XCTAssertTrue(verifyError()?.contains("optimizer.safetensors: checksum") == true, verifyError() ?? "accepted")
        try write("optimizer.safetensors", "abcd")              // truncated
        XCTAssertTrue(verifyError()?.contains("optimizer.safetensors: 4 bytes but the manifest says 8") == true, verifyError() ?? "accepted")
        try write("optimizer.safetensors", "abcdefgh")
        try FileManager.default.removeItem(atPath: dir + "/state.json")
        XCTAssertTrue(verifyError()?.contains("state.json: missing from the checkpoint") == true, verifyError() ?? "accepted")
        try write("state.json", "{}")
        XCTAssertNil(verifyError())

        // A manifest edited into different, still valid JSON fails its own checksum.
        let text = String(decoding: m.encoded, as: UTF8.self)
        try write("manifest.json", text.replacingOccurrences(of: "\"step\" : 7", with: "\"step\" : 8"))
        XCTAssertTrue(verifyError()?.contains("corrupt manifest (its checksum") == true, verifyError() ?? "accepted")
        try write("manifest.json", String(text.prefix(40)))
        XCTAssertTrue(verifyError()?.contains("manifest.json: corrupt manifest") == true, verifyError() ?? "accepted")
        try FileManager.default.removeItem(atPath: dir + "/manifest.json")
        XCTAssertTrue(verifyError()?.contains("manifest.json: missing") == true, verifyError() ?? "accepted")
    }

    func testRecipeDifferenceIgnoresOnlyKeysThatCannotChangeTheLosses() {
        var a = Recipe(), b = Recipe()
        b.out = "elsewhere"; b.saveEvery = 5; b.keepLast = 1; b.resume = "latest"; b.watchdogSeconds = 9; b.evalEvery = 3
        XCTAssertNil(CheckpointState.recipeDifference(saved: a, current: b))
        b.lr = 0.5
        let d = CheckpointState.recipeDifference(saved: a, current: b)
        XCTAssertEqual(d?.key, "lr")
        XCTAssertEqual(d?.current, "0.5")
        a.lr = 0.5; a.objectiveArgs = ["refresh": "4"]
        XCTAssertEqual(CheckpointState.recipeDifference(saved: a, current: b)?.key, "objective_args")
    }

    /// A GRPO run with β > 0 checkpointed before `semantics` 2 had the KL term without the
    /// importance ratio: it resumes with `use_bias_correction_kl=false` and is refused with
    /// today's default (which compared equal and changed its gradient unseen); β = 0, an explicit
    /// value or another objective are left as they were.
    func testAGRPORunFromBeforeTheKLRatioKeepsItsTerm() {
        var saved = Recipe(), current = Recipe()
        saved.objective = "grpo"; current.objective = "grpo"
        saved.objectiveArgs = ["beta": "0.04"]; current.objectiveArgs = ["beta": "0.04"]
        XCTAssertNil(CheckpointState.recipeDifference(saved: saved, current: current))
        let then = CheckpointState.withDefaultsOfItsTime(saved)
        let d = CheckpointState.recipeDifference(saved: then, current: current)
        XCTAssertEqual(d?.key, "objective_args")
        XCTAssertEqual(d?.saved, "{beta: 0.04, use_bias_correction_kl: false}")
        current.objectiveArgs["use_bias_correction_kl"] = "false"
        XCTAssertNil(CheckpointState.recipeDifference(saved: then, current: current))
        for args in [["beta": "0"], [:], ["beta": "0.04", "use_bias_correction_kl": "true"]] {
            saved.objectiveArgs = args
            XCTAssertEqual(CheckpointState.withDefaultsOfItsTime(saved).objectiveArgs, args)
        }
        saved.objective = "uft"; saved.objectiveArgs = ["beta": "0.04"]
        XCTAssertEqual(CheckpointState.withDefaultsOfItsTime(saved).objectiveArgs, ["beta": "0.04"])
    }

    /// Before `semantics` 6 a PPO clip's first-step ratio was the sampler's (1 up to rounding) and
    /// a bound passed the whole gradient: a run with ε = 0 on either side is refused; with ε > 0,
    /// gmpo's own clip, cispo's weight or a non-PPO objective it resumes.
    func testAPPORunFromBeforeTheTieRuleIsRefusedWithABoundAtOne() throws {
        let grpo = try ObjectiveRegistry.make(name: "grpo", args: [:])
        for (objective, args, refusedFor) in [("grpo", ["epsilon": "0"], "epsilon"), ("rloo", ["epsilon": "0.2", "epsilon_high": "0.0"], "epsilon_high"),
                                             ("chord", ["epsilon": "0"], "epsilon"), ("uft", ["epsilon": "0.0"], "epsilon"),
                                             ("prefix-rft", ["epsilon_high": "0"], "epsilon_high"), ("relift", ["epsilon": "0"], "epsilon"),
                                             ("grpo", [:], nil), ("rloo", ["epsilon": "0.1"], nil), ("gmpo", ["epsilon": "0"], nil),
                                             ("grpo", ["loss_type": "cispo", "epsilon_high": "0"], nil), ("dpo", [:], nil),
                                             ("grpo", ["loss_type": "vespo", "epsilon": "0"], nil), ("grpo", ["loss_type": "luspo", "epsilon": "0"], "epsilon")] as [(String, [String: String], String?)] {
            var r = Recipe()
            r.objective = objective; r.objectiveArgs = args
            let why = CheckpointState.meaningChanged(since: 5, recipe: r, objective: grpo)
            XCTAssertEqual(why?.contains("with \(refusedFor ?? "-") = 0 every first-step token now sits on the bound and passes half"), refusedFor.map { _ in true }, "\(objective) \(args)")
            XCTAssertNil(CheckpointState.meaningChanged(since: 6, recipe: r, objective: grpo), "\(objective) \(args)")
        }
    }

    /// Dropout changes nothing sft-dist computes: a checkpoint written before the model's config
    /// kept its dropout (0 then, the source's value now) is the same model.
    func testDropoutKeysDoNotMakeAnotherModel() throws {
        let saved = try JSONSerialization.data(withJSONObject: ["n_embd": 8, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "attention_dropout": 0.0])
        XCTAssertNil(CheckpointState.configDifference(saved: saved, current: ["n_embd": 8, "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1, "attention_dropout": 0.1]))
        XCTAssertEqual(CheckpointState.configDifference(saved: saved, current: ["n_embd": 16, "resid_pdrop": 0.1]), "n_embd: 8 in the checkpoint, 16 here")
    }

    /// ssr and s3ft never read `ratio` (refused since): a checkpoint whose recipe holds one resumes without it.
    func testAnUnreadRatioOfAnOldSSRCheckpointIsLeftOut() {
        var saved = Recipe()
        saved.selfTrain = "ssr"; saved.selfTrainScorer = "task"; saved.selfTrainArgs = ["ratio": "0.2", "prompts": "8"]
        var now = saved
        now.selfTrainArgs = ["prompts": "8"]
        let (x, y) = Recipe.withResolvedArguments(saved, now)
        XCTAssertEqual(x.selfTrainArgs, y.selfTrainArgs)
        XCTAssertEqual(x.selfTrainArgs["prompts"], "8")
        saved.selfTrain = "rft"
        now.selfTrain = "rft"
        XCTAssertNotEqual(Recipe.withResolvedArguments(saved, now).0.selfTrainArgs, Recipe.withResolvedArguments(saved, now).1.selfTrainArgs, "rft reads it")
    }

    /// Before `semantics` 7 the shares that size counts were read in float32: a run they would
    /// now count otherwise is refused; one whose counts do not move resumes.
    func testAShareReadInFloat32IsRefusedWhereItsCountsMove() throws {
        let nll = try ObjectiveRegistry.make(name: "nll", args: [:])
        var r = Recipe()
        r.batchSize = 5; r.selectionPool = 2
        XCTAssertNil(CheckpointState.meaningChanged(since: 6, recipe: r, objective: nll))
        r.objective = "token-clean"
        XCTAssertEqual(CheckpointState.meaningChanged(since: 6, recipe: r, objective: nll)?.contains("objective token-clean's ratio was read in float32"), true)
        XCTAssertNil(CheckpointState.meaningChanged(since: 7, recipe: r, objective: nll))
        r.objective = "nll"; r.selection = "loss"
        XCTAssertNil(CheckpointState.meaningChanged(since: 6, recipe: r, objective: nll), "the default budget, 1/pool, counts as it did")
        r.selectionArgs = ["budget": "0.35"]
        XCTAssertEqual(CheckpointState.meaningChanged(since: 6, recipe: r, objective: nll)?.contains("selection loss's budget (3 of 10 candidates then, 4 now)"), true)
        r.selectionArgs = ["budget": "0.3"]
        XCTAssertNil(CheckpointState.meaningChanged(since: 6, recipe: r, objective: nll))
        r.selection = "q-tuning"
        XCTAssertEqual(CheckpointState.meaningChanged(since: 6, recipe: r, objective: nll)?.contains("selection q-tuning's token_budget"), true)
        r.selectionArgs["token_budget"] = "1"
        XCTAssertNil(CheckpointState.meaningChanged(since: 6, recipe: r, objective: nll))
    }

    /// A rollout run checkpointed before `semantics` 3 took its log-probs at temperature 1: at
    /// another rollout_temperature it is refused (its loss would change from the next step on);
    /// at 1, under scored data (nothing sampled) or for a non-rollout objective it resumes.
    func testARolloutRunFromBeforeTemperedLogProbsIsRefusedAtAnotherTemperature() throws {
        var r = Recipe()
        r.objective = "grpo"; r.rolloutTemperature = 0.7
        let grpo = try ObjectiveRegistry.make(name: "grpo", args: [:]), nll = try ObjectiveRegistry.make(name: "nll", args: [:])
        for old in [nil, 1, 2] as [Int?] {
            let why = CheckpointState.meaningChanged(since: old, recipe: r, objective: grpo)
            XCTAssertEqual(why?.contains("log-probs were at temperature 1; they are now at rollout_temperature (0.7)"), true, "semantics \(String(describing: old))")
        }
        XCTAssertNil(CheckpointState.meaningChanged(since: CheckpointState.currentSemantics, recipe: r, objective: grpo))
        XCTAssertNil(CheckpointState.meaningChanged(since: 2, recipe: r, objective: nll))
        var scored = r
        scored.scoredData = true
        XCTAssertNil(CheckpointState.meaningChanged(since: 2, recipe: scored, objective: grpo))
        r.rolloutTemperature = 1
        XCTAssertNil(CheckpointState.meaningChanged(since: 2, recipe: r, objective: grpo))
        // A dpo run with held-out pairs logged their chosen answers' NLL as eval_loss before 3.
        let dpo = try ObjectiveRegistry.make(name: "dpo", args: [:])
        XCTAssertEqual(CheckpointState.meaningChanged(since: 2, recipe: r, objective: dpo, evaluatesPairs: true)?
            .contains("a dpo run's eval_loss was the held-out chosen answers' NLL; it is now the held-out pairs' DPO loss"), true)
        XCTAssertNil(CheckpointState.meaningChanged(since: 2, recipe: r, objective: dpo, evaluatesPairs: false))
        XCTAssertNil(CheckpointState.meaningChanged(since: 3, recipe: r, objective: dpo, evaluatesPairs: true))
        // A rollout run whose model has eos ids beside the data's end token stopped only at that before 4.
        XCTAssertEqual(CheckpointState.meaningChanged(since: 3, recipe: r, objective: grpo, moreRolloutStops: [256])?
            .contains("rollouts stopped at the data's end token only; they now stop at the model's eos ids too (256 here"), true)
        XCTAssertNil(CheckpointState.meaningChanged(since: 3, recipe: r, objective: grpo, moreRolloutStops: []))
        XCTAssertNil(CheckpointState.meaningChanged(since: 4, recipe: r, objective: grpo, moreRolloutStops: [256]))
    }

    /// grpo evaluated the held-out NLL before `semantics` 5 and now rolls out the held-out
    /// prompts: an earlier grpo run that would evaluate so is refused (with --eval-rollouts 0 it
    /// resumes); from 5 on, a resumed run must evaluate as its checkpoint's did — the same
    /// rollouts per prompt, or the NLL — while eval_examples may change within rollouts.
    func testGRPOsEvaluationMustStayWhatTheCheckpointsRunEvaluated() throws {
        let grpo = try ObjectiveRegistry.make(name: "grpo", args: [:]), nll = try ObjectiveRegistry.make(name: "nll", args: [:])
        var r = Recipe()
        r.objective = "grpo"
        XCTAssertEqual(CheckpointState.meaningChanged(since: 4, recipe: r, objective: grpo, evaluatesRollouts: true)?
            .contains("a grpo run's eval_loss was the held-out completions' NLL; it is now the GRPO loss on rollouts of the held-out prompts"), true)
        XCTAssertNil(CheckpointState.meaningChanged(since: 4, recipe: r, objective: grpo, evaluatesRollouts: false))
        XCTAssertNil(CheckpointState.meaningChanged(since: 5, recipe: r, objective: grpo, evaluatesRollouts: true))
        func changed(_ saved: (rollouts: Int, examples: Int), _ now: (rollouts: Int, examples: Int), objective: Objective? = nil, since: Int = 5) -> String? {
            var a = r, b = r
            a.evalRollouts = saved.rollouts; a.evalExamples = saved.examples
            b.evalRollouts = now.rollouts; b.evalExamples = now.examples
            return CheckpointState.evaluationChanged(since: since, saved: a, current: b, objective: objective ?? grpo)
        }
        XCTAssertEqual(r.rollouts, 8)
        XCTAssertNil(changed((-1, 200), (8, 200)), "-1 is --rollouts")
        XCTAssertNil(changed((4, 6), (4, 50)), "eval_examples within rollouts")
        XCTAssertNil(changed((0, 200), (0, 0)), "the NLL either way")
        XCTAssertEqual(changed((0, 200), (-1, 200))?.contains("evaluated the held-out NLL and this one would evaluate 8 rollouts of each held-out prompt"), true)
        XCTAssertEqual(changed((-1, 200), (-1, 0))?.contains("evaluated 8 rollouts of each held-out prompt and this one would evaluate the held-out NLL"), true)
        XCTAssertEqual(changed((4, 200), (1, 200))?.contains("evaluated 4 rollouts of each held-out prompt and this one would evaluate 1 rollout of each"), true)
        XCTAssertEqual(changed((4, 200), (1, 200))?.contains("resume with its eval_rollouts (4) and eval_examples (200)"), true)
        XCTAssertNil(changed((0, 200), (-1, 200), since: 4), "before 5: meaningChanged's")
        XCTAssertNil(changed((0, 200), (4, 200), objective: nll), "only grpo evaluates with rollouts")
    }

    /// An evaluation that cannot hold its N × G rollouts is refused at start-up, naming both keys.
    func testAnEvaluationLargerThanTheMemoryIsRefused() {
        let prompts = [RolloutPrompt](repeating: RolloutPrompt(ids: [1, 2, 3, 4], reference: nil, source: "h:1"), count: 20_000)
        XCTAssertThrowsError(try RolloutProducer.checkEvaluationMemory(prompts: prompts, rollouts: 4096, completion: 6, available: 1 << 30)) {
            XCTAssertTrue("\($0)".contains("an evaluation of 20000 held-out prompts × 4096 rollouts (eval_examples × eval_rollouts"), "\($0)")
            XCTAssertTrue("\($0)".contains("a smaller --eval-examples or --eval-rollouts"), "\($0)")
        }
        XCTAssertNoThrow(try RolloutProducer.checkEvaluationMemory(prompts: Array(prompts.prefix(200)), rollouts: 8, completion: 6, available: 1 << 30))
        XCTAssertThrowsError(try RolloutProducer.checkEvaluationMemory(prompts: prompts, rollouts: Int.max / 2, completion: 6, available: 1 << 40), "overflow")
    }

    /// Method arguments are compared as the methods read them: spelled at the default, left
    /// out, or written as another decimal of the same float, they are the same run (each was
    /// refused as "a different recipe"); another value is still refused, said as written.
    func testMethodArgumentsAtTheirDefaultsAreTheSameRecipe() {
        var a = Recipe(), b = Recipe()
        a.objective = "power"; b.objective = "power"
        a.objectiveArgs = ["alpha": "10"]
        XCTAssertNil(CheckpointState.recipeDifference(saved: a, current: b))
        b.objectiveArgs = ["alpha": "1e1"]
        XCTAssertNil(CheckpointState.recipeDifference(saved: a, current: b))
        b.objectiveArgs = ["alpha": "5"]
        let d = CheckpointState.recipeDifference(saved: a, current: b)
        XCTAssertEqual(d?.key, "objective_args")
        XCTAssertEqual(d?.saved, "{alpha: 10}")
        XCTAssertEqual(d?.current, "{alpha: 5}")

        // Selection's budget defaults to 1/selection_pool.
        var s = Recipe()
        s.selection = "loss"; s.selectionPool = 4
        var t = s
        t.selectionArgs = ["budget": "0.25", "order": "highest"]
        XCTAssertNil(CheckpointState.recipeDifference(saved: s, current: t))
        t.selectionPool = 2
        XCTAssertEqual(CheckpointState.recipeDifference(saved: s, current: t)?.key, "selection_pool")
        t.selectionPool = 4; t.selectionArgs = ["budget": "0.5"]
        XCTAssertEqual(CheckpointState.recipeDifference(saved: s, current: t)?.key, "selection_args")

        // Self-training: ratio 0.5 is rft's default, 1 is superhf's; max_new_tokens the recipe's.
        var u = Recipe()
        u.selfTrain = "rft"; u.selfTrainScorer = "task"
        var v = u
        v.selfTrainArgs = ["ratio": "0.50", "max_new_tokens": "\(u.maxNewTokens)"]
        XCTAssertNil(CheckpointState.recipeDifference(saved: u, current: v))
        u.selfTrain = "superhf"; v.selfTrain = "superhf"; u.selfTrainScorer = nil; v.selfTrainScorer = nil
        XCTAssertEqual(CheckpointState.recipeDifference(saved: u, current: v)?.key, "self_train_args")
        v.selfTrainArgs = ["ratio": "1"]
        XCTAssertNil(CheckpointState.recipeDifference(saved: u, current: v))
        // An argument a method refuses is compared as written.
        v.selfTrainArgs = ["percentile": "30"]
        XCTAssertEqual(CheckpointState.recipeDifference(saved: u, current: v)?.key, "self_train_args")
        // Without self-training its arguments do nothing: a saved recipe (no flag origins) whose
        // file's self_train_args a --self-train none switched off was refused as {k: 4} vs {}.
        var off = Recipe()
        off.selfTrainArgs = ["k": "4"]
        XCTAssertNil(CheckpointState.recipeDifference(saved: off, current: Recipe()))
        // -0 trains as 0; an absent epsilon_high clips at epsilon.
        var g = Recipe(), h = Recipe()
        g.objective = "grpo"; h.objective = "grpo"
        g.objectiveArgs = ["epsilon": "0.3"]; h.objectiveArgs = ["epsilon": "0.3", "epsilon_high": "0.3", "beta": "-0"]
        XCTAssertNil(CheckpointState.recipeDifference(saved: g, current: h))
        h.objectiveArgs["epsilon_high"] = "0.28"
        XCTAssertEqual(CheckpointState.recipeDifference(saved: g, current: h)?.key, "objective_args")
        // A 0 that stands for a value the recipe sets is that value.
        var p = Recipe(), q = Recipe()
        p.objective = "prefix-rft"; q.objective = "prefix-rft"; p.steps = 40; q.steps = 40
        q.objectiveArgs = ["decay_steps": "40"]
        XCTAssertNil(CheckpointState.recipeDifference(saved: p, current: q))
        q.objectiveArgs = ["decay_steps": "39"]
        XCTAssertEqual(CheckpointState.recipeDifference(saved: p, current: q)?.key, "objective_args")
        p.objective = "relift"; q.objective = "relift"; p.batchSize = 16; q.batchSize = 16; p.rollouts = 8; q.rollouts = 8
        q.objectiveArgs = ["sft_data_size": "2"]
        XCTAssertNil(CheckpointState.recipeDifference(saved: p, current: q))
    }

    /// Rewards and their arguments likewise: `task` is `task=1`, `ignore_case=yes` is `true`,
    /// an unprefixed key of the one reward is that reward's, a default given is the default
    /// (each was refused as "a different recipe"); another weight or value is still refused.
    func testRewardArgumentsAsTheScorersReadThemAreTheSameRecipe() {
        var a = Recipe(), b = Recipe()
        a.objective = "grpo"; b.objective = "grpo"
        a.rewards = ["exact"]; b.rewards = ["exact=1.0"]
        XCTAssertNil(CheckpointState.recipeDifference(saved: a, current: b))
        a.rewardArgs = ["exact.ignore_case": "yes"]; b.rewardArgs = ["ignore_case": "true"]
        XCTAssertNil(CheckpointState.recipeDifference(saved: a, current: b))
        b.rewardArgs = [:]
        let d = CheckpointState.recipeDifference(saved: a, current: b)
        XCTAssertEqual(d?.key, "reward_args")
        XCTAssertEqual(d?.saved, "{exact.ignore_case: yes}")
        b.rewardArgs = ["exact.ignore_case": "on"]; b.rewards = ["exact=2"]
        XCTAssertEqual(CheckpointState.recipeDifference(saved: a, current: b)?.key, "rewards")
        a.rewards = ["numeric", "format=0.5"]; b.rewards = ["numeric=1", "format=.5"]
        a.rewardArgs = ["numeric.tolerance": "0.01"]; b.rewardArgs = ["numeric.tolerance": "1e-2", "format.pattern": FormatScorer.defaultPattern]
        XCTAssertNil(CheckpointState.recipeDifference(saved: a, current: b))
        b.rewardArgs["numeric.tolerance"] = "0.02"
        XCTAssertEqual(CheckpointState.recipeDifference(saved: a, current: b)?.key, "reward_args")
        // The self-training scorer's arguments, with no reward of that name.
        var u = Recipe(), v = Recipe()
        u.selfTrain = "rft"; v.selfTrain = "rft"; u.selfTrainScorer = "numeric"; v.selfTrainScorer = "numeric"
        v.rewardArgs = ["numeric.tolerance": "1e-06"]
        XCTAssertNil(CheckpointState.recipeDifference(saved: u, current: v))
        v.rewardArgs = ["numeric.tolerance": "0.5"]
        XCTAssertEqual(CheckpointState.recipeDifference(saved: u, current: v)?.key, "reward_args")
        // The methods line says a value holding a control character as a JSON string (a regex
        // pattern's newline split the line, an escape sequence reached the terminal raw).
        var g = Recipe()
        g.objective = "grpo"; g.rewards = ["regex"]; g.rewardArgs = ["pattern": "x\ny|\u{1B}"]
        let line = g.methodsLine ?? ""
        XCTAssertTrue(line.hasSuffix(#"; rewards regex=1 (regex.pattern="x\ny|\u001b")"#), line)
        XCTAssertFalse(line.contains("\n") || line.contains("\u{1B}"), line)
        // dpo's defaults that its resolved arguments leave out (so a checkpoint compares as before
        // they existed) are on the line too: it said "(beta=0.1)" only.
        var dpo = Recipe()
        dpo.objective = "dpo"
        XCTAssertEqual(dpo.methodsLine, "methods: objective dpo (beta=0.1, f_divergence_type=reverse_kl, loss_type=sigmoid, use_weighting=false)")
        dpo.objectiveArgs = ["loss_type": "hinge"]
        XCTAssertEqual(dpo.methodsLine, "methods: objective dpo (beta=0.1, f_divergence_type=reverse_kl, loss_type=hinge, use_weighting=false)")
        XCTAssertEqual(try dpo.resolvedObjectiveArguments(), ["beta": "0.1", "loss_type": "hinge"], "the resolved arguments unchanged")
    }

    func testConfigDifferenceNamesTheKey() throws {
        let model = GPT2(config: GPT2Config(vocabSize: 11, contextLength: 8, embedDim: 8, layers: 1, heads: 2))
        let same = try JSONSerialization.data(withJSONObject: model.configJSON)
        XCTAssertNil(CheckpointState.configDifference(saved: same, current: model.configJSON))
        var other = model.configJSON
        other["n_embd"] = 16
        let diff = CheckpointState.configDifference(saved: try JSONSerialization.data(withJSONObject: other), current: model.configJSON)
        XCTAssertEqual(diff, "n_embd: 16 in the checkpoint, 8 here")
        // A checkpoint saved before config.json carried bos/eos ids still resumes; different ids do not.
        let written = ModelDirectory.configJSON(model, tokenizer: ByteTokenizer())
        XCTAssertNotNil(CheckpointState.configDifference(saved: same, current: written))
        XCTAssertNil(CheckpointState.configDifference(saved: same, current: written, mayBeAbsent: ModelDirectory.tokenIdFields))
        var otherIds = written
        otherIds["eos_token_id"] = 3
        let ids = CheckpointState.configDifference(saved: try JSONSerialization.data(withJSONObject: otherIds), current: written,
                                                   mayBeAbsent: ModelDirectory.tokenIdFields)
        XCTAssertEqual(ids, "eos_token_id: 3 in the checkpoint, 256 here")
        // A pad_token_id outside the vocabulary is written as null since 2026-12-06: a checkpoint
        // that kept GPT-2's 50256 (vocab 11 here) still resumes; one inside the vocabulary, or
        // another id against a written one, is a difference.
        var padNull = written
        padNull["pad_token_id"] = NSNull()
        for (saved, accepted) in [(50256, true), (-1, true), (11, true), (3, false)] {
            var old = written
            old["pad_token_id"] = saved
            let d = CheckpointState.configDifference(saved: try JSONSerialization.data(withJSONObject: old), current: padNull,
                                                     mayBeAbsent: ModelDirectory.tokenIdFields)
            XCTAssertEqual(d == nil, accepted, "pad_token_id \(saved): \(d ?? "accepted")")
        }
        var padSeven = written
        padSeven["pad_token_id"] = 7
        var kept = written
        kept["pad_token_id"] = 50256
        XCTAssertEqual(CheckpointState.configDifference(saved: try JSONSerialization.data(withJSONObject: kept), current: padSeven,
                                                       mayBeAbsent: ModelDirectory.tokenIdFields), "pad_token_id: 50256 in the checkpoint, 7 here")
        // A long or structured value is said cut, as JSON (5,000 characters made the line that long).
        var long = model.configJSON
        long["activation_function"] = String(repeating: "a", count: 5000)
        let cut = CheckpointState.configDifference(saved: try JSONSerialization.data(withJSONObject: long), current: model.configJSON)
        XCTAssertEqual(cut, "activation_function: \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa…\" in the checkpoint, \"\(model.configJSON["activation_function"]!)\" here")
        long["activation_function"] = ["n_layer": 2, "x": [1, 2]]
        let object = CheckpointState.configDifference(saved: try JSONSerialization.data(withJSONObject: long), current: model.configJSON)
        XCTAssertEqual(object, "activation_function: {\"n_layer\":2,\"x\":[1,2]} in the checkpoint, \"\(model.configJSON["activation_function"]!)\" here")
        // Checkpoints written before configs gave eps as its shortest decimal hold the float's
        // exact double: the same float32, the same model; another eps is still a difference.
        var old = model.configJSON
        old["layer_norm_epsilon"] = Double(Float(1e-5))   // 9.999999747378752e-06
        XCTAssertEqual(model.configJSON["layer_norm_epsilon"] as? Double, 1e-5)
        XCTAssertNil(CheckpointState.configDifference(saved: try JSONSerialization.data(withJSONObject: old), current: model.configJSON))
        old["layer_norm_epsilon"] = 1.1e-5
        XCTAssertEqual(CheckpointState.configDifference(saved: try JSONSerialization.data(withJSONObject: old), current: model.configJSON)?
            .hasPrefix("layer_norm_epsilon: "), true)
    }

    /// A gradient that is NaN while the loss is finite is caught (through the global norm) and,
    /// with nan_policy: skip, the step is skipped, counted, and leaves the parameters alone.
    func testNonFiniteGradientWithFiniteLossIsSkippedAndCounted() throws {
        final class NaNGradient: Objective {
            let name = "nan-gradient"
            let requirements = ObjectiveRequirements()
            func lossAndGradient(_ input: ObjectiveInput, dlogits: UnsafeMutablePointer<Float>) -> ObjectiveResult {
                dlogits[input.vocab + 1] = .nan
                return ObjectiveResult(loss: 1.5)
            }
        }
        var recipe = Recipe()
        recipe.nanPolicy = .skip; recipe.batchSize = 2; recipe.microBatchSize = 2; recipe.steps = 2
        let tokenizer = ByteTokenizer()
        let model = GPT2(config: GPT2Config(vocabSize: tokenizer.vocabSize, contextLength: 16, embedDim: 8, layers: 1, heads: 2), seed: 3)
        let records = (0..<4).map { SourcedRecord(record: .promptCompletion(prompt: "p\($0)", completion: "c\($0)"), path: "t.jsonl", line: $0 + 1) }
        let data = try Dataset(records: records, path: "t.jsonl", tokenizer: tokenizer, maxLength: 16)
        let setup = RunSetup(recipe: recipe, tokenizer: tokenizer, model: model, train: data, heldOut: data,
                             objective: NaNGradient(), referenceModel: nil)
        let trainer = Trainer(setup: setup, comm: LocalCommunicator())
        let before = model.parameters.checksum()
        let report = trainer.step(0)
        XCTAssertTrue(report.skipped)
        XCTAssertEqual(report.loss, 1.5)
        XCTAssertTrue(report.gradNorm.isNaN)
        XCTAssertEqual(trainer.skippedSteps, 1)
        XCTAssertEqual(model.parameters.checksum(), before, "a skipped step must not touch the parameters")
    }

    func testCheckedAllocationReportsTheSizeInsteadOfTrapping() {
        XCTAssertEqual(CheckedAllocation.describe(bytes: 512), "512 bytes")
        XCTAssertEqual(CheckedAllocation.describe(bytes: 3 << 30), "3.0 GiB")
        let p = CheckedAllocation.floats(1000, for: "a test")
        XCTAssertEqual(p[999], 0)
        XCTAssertEqual(Int(bitPattern: UnsafeRawPointer(p)) % 64, 0)
        CheckedAllocation.free(p)
    }
}
