import Foundation
import XCTest
@testable import Training

/// The recipe: keys declared once and read the same way from YAML, flags and JSON, checks
/// across keys naming the recipe's line (hostile YAML: `HostileRecipeTests`).
final class RecipeTests: XCTestCase, RecipeRefusalChecks {
    /// `yaml` reads, and `validate()` refuses it with a message starting `expected`.
    func validateRefuses(_ yaml: String, _ expected: String, line: UInt = #line) {
        do {
            try Recipe.parse(yaml: yaml, source: "r.yaml").validate()
            XCTFail("accepted", line: line)
        } catch { XCTAssertTrue("\(error)".hasPrefix(expected), "\(error)", line: line) }
    }

    /// Numbers read as the flags read them, not by YAML 1.1's resolution (`steps: 010` was 8,
    /// octal, while `--steps 010` is 10); a tag of another type, and a NUL in a string (a path
    /// the system would cut there), are refused naming them.
    func testNumbersReadAsFlagsAndNULsAreRefused() throws {
        XCTAssertEqual(try Recipe.parse(yaml: "steps: 010\n", source: "r.yaml").steps, 10)
        XCTAssertEqual(try Recipe.parse(yaml: "steps: +12\nlr: 3e-4\nseed: 7\n", source: "r.yaml").lr, 3e-4)
        XCTAssertEqual(try Recipe.parse(yaml: "lr: !!float 0.5\nsteps: !!int 5\n", source: "r.yaml").steps, 5)
        assertRefused("steps: 0x10\n", "r.yaml:1: steps must be an integer in 1…100000000 (got 0x10)")
        assertRefused("steps: 0b101\n", "(got 0b101)")
        assertRefused("steps: 1_000\n", "(got 1_000)")
        assertRefused("steps: 1:30\n", "(got 1:30)")
        assertRefused("lr: 1_0.5\n", "r.yaml:1: lr must be a finite number > 0 (got 1_0.5)")
        // Hexadecimal floats too (Swift's Double reads them: lr 0x10 trained at 16).
        assertRefused("lr: 0x10\n", "r.yaml:1: lr must be a finite number > 0 (got 0x10)")
        assertRefused("grad_clip: 0x1p-9\n", "(got 0x1p-9")
        // Out of range: the value as written (1e-400 is read as 0 and was said "(got 0.0)").
        assertRefused("lr: 1e-400\n", "r.yaml:1: lr must be a finite number > 0 (got 1e-400)")
        assertRefused("steps: -1\n", "r.yaml:1: steps must be an integer in 1…100000000 (got -1)")
        assertRefused("lr: !custom 0.001\n", "(got 0.001 with the tag !custom)")
        assertRefused("seed: 0x1f\n", "(got 0x1f)")
        assertRefused("data: \"a.jsonl\\0junk\"\n", "r.yaml:1: data must be a non-empty string (got a string holding a NUL character (\\0))")
        assertRefused("out: \"a\\0b\"\n", "out must be a non-empty string (got a string holding a NUL character")
        assertRefused("eval_data: {x: \"a\\0b\"}\n", "(got a string holding a NUL character (\\0) for x)")
        assertRefused("heldout: \"a\\0b\"\n", "r.yaml:1: heldout must be a non-empty path (got a string holding a NUL character")
        assertRefused("steps: !!str 7\n", "(got 7 with the tag tag:yaml.org,2002:str)")
    }

    /// Refusals added on 2026-12-04 do not stop a run resumed from before: its checkpoint's
    /// min_lr_ratio must match, so the flag cannot simply be dropped.
    func testNewRefusalsLeaveResumedRunsAlone() throws {
        validateRefuses("schedule: constant\nmin_lr_ratio: 0.05\n", "r.yaml:2: min_lr_ratio is where the cosine and linear schedules end")
        try Recipe.parse(yaml: "schedule: constant\nmin_lr_ratio: 0.05\nresume: run/checkpoints/step-000004\n", source: "r.yaml").validate()
        validateRefuses("data: d.jsonl\nheldout_fraction: 0\neval_every: 2\n", "r.yaml:3: eval_every acts on the held-out set")
        try Recipe.parse(yaml: "data: d.jsonl\nheldout_fraction: 0\neval_every: 2\nresume: run/checkpoints/step-000004\n", source: "r.yaml").validate()
        // `resume: latest` with no checkpoint in OUT starts a new run: a new run's checks apply.
        validateRefuses("schedule: constant\nmin_lr_ratio: 0.05\nresume: latest\nout: /nonexistent/sft-dist-out\n",
                        "r.yaml:2: min_lr_ratio is where the cosine and linear schedules end")
    }

    func testEveryKeyIsDeclaredOnceWithHelpAndAValidDefault() throws {
        let names = Recipe.keys.map(\.key.name)
        XCTAssertEqual(Set(names).count, names.count, "duplicate key names")
        XCTAssertTrue(Recipe.keys.allSatisfy { !$0.key.help.isEmpty })
        try Recipe().validate()
        XCTAssertEqual(Recipe().steps, 1000)
        // The keys recipes had before they were declared in one place, none lost or renamed.
        XCTAssertEqual(names, ["model", "data", "heldout", "heldout_fraction", "steps", "num_train_epochs", "batch_size", "micro_batch_size", "lr",
                               "min_lr_ratio", "warmup_steps", "schedule", "optimizer", "beta1", "beta2", "adam_eps",
                               "weight_decay", "momentum", "grad_clip", "seed", "out", "max_length", "truncation", "packing",
                               "chat_template", "dataset_text_field", "completion_only_loss", "assistant_only_loss", "objective", "objective_args", "ref_model", "sync_ref_model", "ref_model_mixup_alpha", "ref_model_sync_steps", "precompute_ref_log_probs", "precompute_ref_batch_size", "selection", "selection_pool", "selection_args", "eval_every", "eval_examples",
                               "max_new_tokens", "eval_data", "checksum_every", "log_every", "skip_bad_lines", "nan_policy", "nan_skip_limit",
                               "overlap_grad_sync", "freeze", "trainable", "l2_init", "ema", "bema", "bema_update_freq", "bema_ema_power", "bema_bias_power", "bema_lag", "bema_update_after", "bema_multiplier", "bema_min_ema_multiplier", "bema_update_ref_model", "bema_ref_model_update_freq", "bema_ref_model_update_after", "save_format", "save_every", "keep_last", "resume",
                               "unlabelled", "self_train", "self_train_every", "self_train_scorer", "self_train_args", "zero", "recompute",
                               "watchdog_seconds",
                               "lora_rank", "lora_alpha", "lora_dropout", "lora_targets", "merge_lora", "neftune_noise_alpha",
                               "prompts", "rollouts", "rollout_temperature", "rollout_top_p", "rollout_top_k", "max_completion_length",
                               "eval_rollouts", "steps_per_generation", "num_iterations", "mask_truncated_completions", "rewards", "reward_args", "scale_rewards",
                               "multi_objective_aggregation",
                               "scored_data"])
    }

    /// recipe.yaml and the canonical JSON hold every key and read back to the same recipe.
    func testRecipeYAMLAndJSONRoundTrip() throws {
        var r = Recipe()
        r.steps = 7; r.schedule = .linear; r.optimizer = .sgd; r.heldout = "h.jsonl"; r.objectiveArgs = ["k": "4", "beta": "-0.2"]
        r.nanPolicy = .skip; r.saveFormat = .hf; r.truncation = .drop; r.packing = true; r.seed = UInt64.max; r.lr = 1e-4
        r.completionOnlyLoss = false
        // Found by the fuzz campaign: YAMLEncoder wrote 15 digits, so recipe.yaml did not
        // reproduce a value such as this one; strings that look like other types stay strings.
        r.watchdogSeconds = 30.922337203685476; r.model = "~"; r.out = "123"; r.data = "true"
        let back = try Recipe.parse(yaml: r.yaml, source: "recipe.yaml")
        XCTAssertEqual(back, r)
        XCTAssertEqual(try JSONDecoder().decode(Recipe.self, from: Data(r.canonicalJSON.utf8)), r)
        XCTAssertNil(back.firstDifference(from: r))
        var other = r
        other.microBatchSize = 3
        XCTAssertEqual(other.firstDifference(from: r)?.key, "micro_batch_size")
    }

    /// A run that continued one checkpoint writes it as a comment: its recipe.yaml then trains
    /// the same settings from step 0 (`resume: DIR` was refused once keep_last deleted DIR);
    /// `resume: latest` stays a key (it continues OUT's own checkpoints, or starts afresh).
    func testRecipeYAMLCommentsOutAResumedCheckpoint() throws {
        var r = Recipe()
        r.resume = "runs/a/checkpoints/step-000004"
        XCTAssertTrue(r.yaml.contains("\n# resume: runs/a/checkpoints/step-000004\n"), r.yaml)
        let back = try Recipe.parse(yaml: r.yaml, source: "recipe.yaml")
        XCTAssertNil(back.resume)
        XCTAssertNil(back.firstDifference(from: r, only: { $0.name != "resume" }))
        r.resume = "latest"
        XCTAssertEqual(try Recipe.parse(yaml: r.yaml, source: "recipe.yaml"), r)
        XCTAssertFalse(r.yaml.contains("# resume"), r.yaml)
    }

    func testFlagTextGoesThroughTheSameKeys() throws {
        var r = Recipe()
        try Recipe.key(named: "steps")!.read(flag: "12", into: &r)
        try Recipe.key(named: "objective_args")!.read(flag: "k=3", into: &r)
        try Recipe.key(named: "objective_args")!.read(flag: "beta=-1", into: &r)
        try Recipe.key(named: "schedule")!.read(flag: "constant", into: &r)
        XCTAssertEqual(r.steps, 12)
        XCTAssertEqual(r.objectiveArgs, ["k": "3", "beta": "-1"])
        XCTAssertEqual(r.schedule, .constant)
        // A key twice among the flags is refused (the last won silently); a flag still replaces
        // the recipe file's key.
        var twice = Recipe()
        XCTAssertThrowsError(try Recipe.key(named: "objective_args")!.read(flags: ["alpha=0.1", "alpha=0.2"], into: &twice)) {
            XCTAssertEqual("\($0)", "--objective-arg alpha=0.2: alpha is given twice (alpha=0.1 and alpha=0.2); give each key once")
        }
        var file = try Recipe.parse(yaml: "objective: dft\nobjective_args: {alpha: 0.1, beta: 2}\n", source: "r.yaml")
        try Recipe.key(named: "objective_args")!.read(flags: ["alpha=0.3"], into: &file)
        XCTAssertEqual(file.objectiveArgs, ["alpha": "0.3", "beta": "2"])
        func refused(_ name: String, _ text: String) -> String {
            var r = Recipe()
            do { try Recipe.key(named: name)!.read(flag: text, into: &r); return "accepted" } catch { return "\(error)" }
        }
        XCTAssertEqual(refused("steps", "-1"), "--steps must be an integer in 1…100000000 (got -1)")
        XCTAssertEqual(refused("batch_size", "9223372036854775807"), "--batch-size must be an integer in 1…1048576 (got 9223372036854775807)")
        XCTAssertEqual(refused("micro_batch_size", "-3"), "--micro-batch-size must be an integer in 1…65536 (got -3)")
        XCTAssertEqual(refused("lr", "nan"), "--lr must be a finite number > 0 (got nan)")
        XCTAssertEqual(refused("lr", "0x10"), "--lr must be a finite number > 0 (got 0x10)")
        XCTAssertEqual(refused("lr", "0x1p-9"), "--lr must be a finite number > 0 (got 0x1p-9)")
        XCTAssertEqual(refused("optimizer", "adam"), "--optimizer must be one of adamw, sgd (got adam)")
        XCTAssertEqual(refused("objective_args", "k"), "--objective-arg must be key=value pairs (a YAML mapping of names to scalars, or lists of scalars under loss_type and loss_weights) (got k)")
        XCTAssertEqual(refused("watchdog_seconds", "inf"), "--watchdog must be a number in [0, 1e+07] (got inf)")
    }

    func testOutOfRangeAndWrongTypeYAMLNamesFileLineAndKey() {
        assertRefused("model: tiny\nbatch_size: 9223372036854775807\n", "r.yaml:2: batch_size must be an integer in 1…1048576")
        assertRefused("steps: -1\n", "r.yaml:1: steps must be an integer in 1…100000000 (got -1)")
        // A quoted number is a YAML string: "(got 8)" alone read as in range.
        assertRefused("model: tiny\nbatch_size: \"8\"\n", "r.yaml:2: batch_size must be an integer in 1…1048576 (got the quoted string \"8\"; write it without quotes)")
        assertRefused("max_length: 1099511627776\n", "max_length must be an integer in 2…1048576")
        assertRefused("lr: .nan\n", "r.yaml:1: lr must be a finite number > 0")
        assertRefused("schedule: [cosine]\n", "schedule must be one of cosine, linear, constant (got a sequence)")
        assertRefused("objective_args: {k: [1]}\n", "objective_args must be key=value pairs")
        assertRefused("reward_args: {regex.pattern: [\"^a\", \"b$\"]}\n", "(got a sequence for regex.pattern)")
        // A list of scalars is kept as the flag form, its items joined by commas (TRL's loss_type list).
        XCTAssertEqual(try Recipe.parse(yaml: "objective_args: {loss_type: [sigmoid, sft], loss_weights: [1, 0.7]}\n", source: "r.yaml").objectiveArgs,
                       ["loss_type": "sigmoid,sft", "loss_weights": "1,0.7"])
        // The value that is not a scalar is named ("(got a mapping)" said the mapping was wrong).
        assertRefused("objective_args: {beta: 0.1, alpha: [1, 2]}\n", "r.yaml:1: objective_args must be key=value pairs (a YAML mapping of names to scalars, or lists of scalars under loss_type and loss_weights) (got a sequence for alpha)")
        assertRefused("objective_args: {loss_type: [sigmoid, [sft]]}\n", "(got a sequence for loss_type)")
        assertRefused("objective_args: {loss_type: []}\n", "(got a sequence for loss_type)")
        assertRefused("objective_args: {alpha: {x: 1}}\n", "(got a mapping for alpha)")
        XCTAssertNoThrow(try Recipe.parse(yaml: "heldout: ~\nref_model:\n", source: "r.yaml"))
    }

    func testObjectiveArgumentsAreCheckedWithTheRecipe() {
        var r = Recipe()
        r.objective = "otr"; r.objectiveArgs = ["k": "1000000000"]
        XCTAssertThrowsError(try r.validate()) { XCTAssertTrue("\($0)".contains("objective otr: k must be an integer in 1…4096"), "\($0)") }
    }

    /// heldout_fraction splits a --data file; with the built-in data (its held-out set is built
    /// apart) or with --heldout FILE it would be ignored, so a value other than the default is
    /// refused there; the default, as a saved recipe spells it out, is not.
    func testHeldoutFractionWhereNoSplitHappensIsRefused() throws {
        var r = Recipe()
        try r.validate()
        r.heldoutFraction = 0.05
        try r.validate()
        r.heldoutFraction = 0.5
        XCTAssertThrowsError(try r.validate()) { XCTAssertTrue("\($0)".contains("--heldout-fraction has no effect on the built-in data"), "\($0)") }
        r.data = "train.jsonl"
        try r.validate()
        r.heldout = "held.jsonl"
        XCTAssertThrowsError(try r.validate()) { XCTAssertTrue("\($0)".contains("has no effect with heldout (--heldout held.jsonl)"), "\($0)") }
    }

    /// One optimizer's or one feature's keys away from their defaults where it is not used are
    /// refused (they did nothing); where it is used, they are accepted.
    func testKeysThatWouldDoNothingAreRefused() throws {
        func refused(_ edit: (inout Recipe) -> Void, _ needle: String, line: UInt = #line) {
            var r = Recipe()
            edit(&r)
            XCTAssertThrowsError(try r.validate(), line: line) { XCTAssertTrue("\($0)".contains(needle), "\($0)", line: line) }
        }
        refused({ $0.momentum = 0.9 }, "--momentum is SGD's momentum")
        refused({ $0.optimizer = .sgd; $0.beta1 = 0.5 }, "--beta1 is AdamW's")
        refused({ $0.optimizer = .sgd; $0.adamEps = 1e-6 }, "--adam-eps is AdamW's")
        refused({ $0.keepLast = 5 }, "--keep-last prunes checkpoints")
        refused({ $0.selfTrainEvery = 5 }, "--self-train-every spaces self-training rounds")
        refused({ $0.evalExamples = 0; $0.maxNewTokens = 5 }, "--max-new-tokens is the length of generated answers")
        for ok: (inout Recipe) -> Void in [{ $0.maxNewTokens = 5 }, { $0.evalExamples = 0; $0.maxNewTokens = 5; $0.selfTrain = "rft"; $0.selfTrainScorer = "task" },
                                           { $0.evalExamples = 0; $0.maxNewTokens = 5; $0.objective = "spin" }] {
            var r = Recipe()
            ok(&r)
            XCTAssertNoThrow(try r.validate())
        }
        var r = Recipe()
        r.optimizer = .sgd; r.momentum = 0.9; r.saveEvery = 10; r.keepLast = 5
        try r.validate()
    }

    /// The checks across keys (validate) name the recipe line of the key they refuse when a
    /// file set it — the line to edit — and the key with its flag when flags set it.
    func testChecksAcrossKeysNameTheRecipeLine() throws {
        validateRefuses("steps: 2\nheldout_fraction: 0.3\n", "r.yaml:2: heldout_fraction has no effect on the built-in data")
        validateRefuses("steps: 2\nself_train: semievol\nself_train_args:\n  bogus: 1\n", "r.yaml:3: self_train_args: unknown key \"bogus\"")
        validateRefuses("objective: dft\nobjective_args: {bogus: 1}\n", "r.yaml:2: objective dft: unknown argument(s) bogus; it takes none")
        validateRefuses("objective_args: {k: 0}\nobjective: otr\n", "r.yaml:1: objective otr: k must be an integer")
        validateRefuses("selection: uds\nsteps: 3\nselection_args: {bogus: 1}\n", "r.yaml:3: selection uds: unknown argument(s) bogus; accepted: alpha")
        validateRefuses("selection_pool: 9\n", "r.yaml:1: selection_pool needs a selector")
        // It named self_train_args too, which was not given.
        validateRefuses("self_train_scorer: task\n", "r.yaml:1: self_train_scorer needs --self-train semievol")
        validateRefuses("self_train_args: {k: 2}\n", "r.yaml:1: self_train_args needs --self-train semievol")
        validateRefuses("steps: 2\nlora_alpha: 4\n", "r.yaml:2: lora_alpha needs lora_rank")
        validateRefuses("steps: 2\nkeep_last: 4\n", "r.yaml:2: keep_last prunes checkpoints")
        var r = Recipe()
        r.heldoutFraction = 0.3
        XCTAssertThrowsError(try r.validate()) { XCTAssertTrue("\($0)".hasPrefix("--heldout-fraction has no effect"), "\($0)") }
    }

    /// A flag that replaces the file's objective (selector, self-training method) drops the
    /// file's arguments for it, with a note naming their line; the same method named again,
    /// or no flag, keeps them (and the file's bad argument is still refused).
    func testAFlagReplacingTheMethodDropsTheFilesArguments() throws {
        let yaml = "objective: dft\nobjective_args: {bogus: 1}\nselection: uds\nselection_args: {alpha: 0.5}\nsteps: 3\n"
        var r = try Recipe.parse(yaml: yaml, source: "r.yaml")
        r.dropArgumentsOfReplacedMethods(flags: ["objective": "nll", "selection": "uds"])
        XCTAssertEqual(r.objectiveArgs, [:])
        XCTAssertEqual(r.selectionArgs, ["alpha": "0.5"])
        XCTAssertEqual(r.notes, ["r.yaml:2: objective_args not used: they are dft's, and --objective nll replaces it"])
        try r.validate()
        var same = try Recipe.parse(yaml: yaml, source: "r.yaml")
        same.dropArgumentsOfReplacedMethods(flags: ["objective": "dft", "selection": "loss"])
        XCTAssertEqual(same.objectiveArgs, ["bogus": "1"])
        XCTAssertEqual(same.selectionArgs, [:])
        XCTAssertEqual(same.notes.count, 1)
        validateRefuses(yaml, "r.yaml:2: objective dft: unknown argument(s) bogus")
        // Arguments under no `objective:` line are for whatever objective the flag names.
        var noMethod = try Recipe.parse(yaml: "objective_args: {alpha: 3}\n", source: "r.yaml")
        noMethod.dropArgumentsOfReplacedMethods(flags: ["objective": "power"])
        XCTAssertEqual(noMethod.objectiveArgs, ["alpha": "3"])
        XCTAssertEqual(noMethod.notes, [])
    }

    /// Every recipe the repository ships reads and passes the checks across keys (a new check
    /// must not refuse a documented recipe; a recipe must not set a key its method ignores).
    func testShippedRecipesAreValid() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let dir = root.appendingPathComponent("recipes")
        let files = FileManager.default.enumerator(atPath: dir.path)!.compactMap { $0 as? String }.filter { $0.hasSuffix(".yaml") }
        XCTAssertGreaterThanOrEqual(files.count, 10)
        for f in files {
            XCTAssertNoThrow(try Recipe.load(path: dir.appendingPathComponent(f).path).validate(), f)
        }
    }

    /// Methods that cannot run together and keys nothing chosen reads (a hostile review's
    /// finds): self-training beside a rollout objective, a generation longer than the run, a
    /// --ref-model no objective or selector reads, a selector that keeps every candidate.
    func testMethodsThatCannotCombineAreRefused() throws {
        validateRefuses("objective: relift\nrewards: [task]\nself_train: rft\n", "r.yaml:3: self_train rft makes each step's batch")
        validateRefuses("objective: grpo\nscored_data: true\nself_train: semievol\n", "r.yaml:3: self_train semievol makes each step's batch from the model's own answers, but scored_data")
        validateRefuses("objective: grpo\nsteps: 4\nsteps_per_generation: 8\n", "r.yaml:3: steps_per_generation 8 is more than steps (4)")
        validateRefuses("ref_model: base\n", "r.yaml:1: ref_model base is read by objectives with a reference term")
        validateRefuses("objective: grpo\nref_model: base\n", "r.yaml:2: ref_model base is read")
        validateRefuses("selection: uds\nselection_pool: 1\n", "r.yaml:1: selection uds would keep all 48 candidates")
        // What self-training needs of the recipe is refused here, so by --dry-run too, and the
        // reward functions and scorer are built with their arguments.
        validateRefuses("objective: grpo\nrewards: [regex]\n", "scorer regex: needs pattern=REGEX (in train, as --reward-arg regex.KEY=VALUE)")
        validateRefuses("self_train: rft\nself_train_scorer: regex\n", "scorer regex: needs pattern=REGEX")
        validateRefuses("self_train: rft\n", "r.yaml:1: --self-train rft needs --self-train-scorer")
        validateRefuses("self_train: superhf\nunlabelled: u.jsonl\nrewards: [task]\n", "r.yaml:1: --self-train superhf trains with --objective superhf")
        validateRefuses("objective: spin\nunlabelled: u.jsonl\n", "r.yaml:2: objective spin answers the prompts of --data; drop --unlabelled")
        validateRefuses("objective: dpo\nselection: loss\n", "r.yaml:2: selection loss chooses single sequences; objective dpo trains on pairs")
        // (grpo samples rollouts, so it needs a reward: refused here since the reward check moved into validate.)
        validateRefuses("objective: grpo\nsteps: 8\n", "r.yaml:1: objective grpo samples rollouts and needs a reward")
        for ok in ["objective: dpo\nref_model: base\n", "objective: grpo\nobjective_args: {beta: 0.1}\nref_model: base\nrewards: [task]\n",
                   "selection: learnability\nref_model: base\n", "selection: uds\nselection_pool: 1\nselection_args: {budget: 0.5}\n",
                   "objective: grpo\nsteps: 8\nsteps_per_generation: 8\nrewards: [task]\n", "self_train: rft\nself_train_scorer: task\n",
                   "selection: q-tuning\nselection_pool: 1\n"] {   // q-tuning prunes tokens even keeping every sample
            XCTAssertNoThrow(try Recipe.parse(yaml: ok, source: "r.yaml").validate(), ok)
        }
    }

    /// Rollout keys where no objective samples, and a self-training share of 0, did nothing.
    func testRolloutKeysWithoutASamplerAreRefused() throws {
        validateRefuses("steps: 2\nrollouts: 4\n", "r.yaml:2: rollouts is read by the objectives that sample rollouts")
        validateRefuses("rewards: [task]\n", "r.yaml:1: rewards is read by the objectives that sample")
        validateRefuses("objective: dft\nmax_completion_length: 8\n", "r.yaml:2: max_completion_length is read")
        validateRefuses("self_train: rft\nself_train_args: {ratio: 0}\n", "r.yaml:2: self_train_args: ratio=0 trains on none")
        for ok in ["objective: grpo\nrollouts: 4\nrewards: [task]\n", "objective: grpo\nscored_data: true\ndata: scored.jsonl\nmax_completion_length: 8\n",
                   "self_train: superhf\nobjective: superhf\nrewards: [task]\n", "rollouts: 8\nmax_completion_length: 16\n"] {
            XCTAssertNoThrow(try Recipe.parse(yaml: ok, source: "r.yaml").validate(), ok)
        }
    }

    /// `selection: {name, pool, args}` (issue 13) is the flat keys; unknown fields are the
    /// loader's unknown-key error; a field given twice is a duplicate key.
    func testSelectionBlockIsTheFlatSelectionKeys() throws {
        let block = try Recipe.parse(yaml: "selection: {name: uds, pool: 3, args: {alpha: 0.5, queue: 16}}\n", source: "r.yaml")
        let flat = try Recipe.parse(yaml: "selection: uds\nselection_pool: 3\nselection_args: {alpha: 0.5, queue: 16}\n", source: "r.yaml")
        XCTAssertEqual(block, flat)
        XCTAssertEqual(block.selection, "uds"); XCTAssertEqual(block.selectionPool, 3)
        XCTAssertEqual(block.selectionArgs, ["alpha": "0.5", "queue": "16"])
        XCTAssertEqual(try Recipe.parse(yaml: "selection:\n  name: loss\n", source: "r.yaml").selectionPool, 4)
        XCTAssertEqual(try Recipe.parse(yaml: "selection: random\n", source: "r.yaml").selection, "random")
        XCTAssertEqual(try Recipe.parse(yaml: block.yaml, source: "recipe.yaml"), block)   // recipe.yaml stays flat
        assertRefused("steps: 3\nselection:\n  name: uds\n  pol: 3\n", "r.yaml:4: unknown key \"selection.pol\" (did you mean \"selection.pool\"?)")
        assertRefused("selection: {name: uds, pool: 0}\n", "r.yaml:1: selection_pool must be an integer in 1…1024 (got 0)")
        assertRefused("selection: {name: nope}\n", "r.yaml:1: selection must be one of none, uds")
        assertRefused("selection: {name: uds, args: [1]}\n", "selection_args must be key=value pairs")
        assertRefused("selection: {name: uds, pool: 2}\nselection_pool: 2\n", "r.yaml:2: duplicate key \"selection_pool\" (also set at line 1)")
        assertRefused("selection: {pool: 2}\n", "r.yaml:1: the selection block needs name")
        assertRefused("selection: [uds]\n", "r.yaml:1: selection must be one of none, uds")
    }
}
