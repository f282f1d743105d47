import Foundation
import Models

/// Every recipe key, in the order `recipe.yaml` lists them. Adding a key is this one line plus
/// its `train` flag (`@Option(recipe: \.name)` in `Sources/sft-dist/TrainCommand.swift`, whose
/// name and help come from here); code reads it as `recipe.name`.
public struct RecipeKeys: Sendable {
    public let model = RecipeKey("model", "default", .nonEmpty, "Preset (default, tiny, small, gpt2-mini) or a model directory.")
    public let data = RecipeKey("data", "builtin:tasks", .nonEmpty,
                                "Training JSONL ({prompt, completion}, {messages} or {text}), or builtin:tasks.", resume: .mayChange)
    public let heldout = RecipeKey<String?>("heldout", nil, .optionalPath, "Held-out JSONL (default: a split of --data).", resume: .mayChange)
    public let heldoutFraction = RecipeKey("heldout_fraction", 0.05, .within(0, 1, openHigh: true),
                                           "Fraction of --data held out when --heldout is not given.")
    public let steps = RecipeKey(Settings.steps, default: 1000)
    public let numTrainEpochs = RecipeKey("num_train_epochs", 0.0, .within(0, 1e6),
                                          "Train this many passes over the training rows instead of --steps (⌈rows ÷ batch_size⌉ steps an epoch, the last a short batch, as in transformers; 0: count steps).")
    public let batchSize = RecipeKey(Settings.batchSize, default: 48)
    // Losses are normalised by the step batch's global counts, so the micro-batches only change
    // float summation order, as another rank count does: a resume may lower it (out of memory).
    public let microBatchSize = RecipeKey(Settings.microBatchSize, default: 12, resume: .mayChange)
    public let lr = RecipeKey("lr", 3e-3, .positive, "Peak learning rate.")
    public let minLRRatio = RecipeKey("min_lr_ratio", 0.1, .within(0, 1), "Final learning rate as a fraction of the peak.")
    public let warmupSteps = RecipeKey(Settings.warmupSteps, default: 20)
    public let schedule = RecipeKey("schedule", LRSchedule.Kind.cosine, .cases, "Learning-rate schedule.")
    public let optimizer = RecipeKey("optimizer", OptimizerKind.adamw, .cases, "The update rule.")
    public let beta1 = RecipeKey("beta1", 0.9, .within(0, 1, openHigh: true), "AdamW's first-moment decay.")
    public let beta2 = RecipeKey("beta2", 0.95, .within(0, 1, openHigh: true), "AdamW's second-moment decay.")
    public let adamEps = RecipeKey("adam_eps", 1e-8, .within(0, 1, openLow: true), "AdamW's denominator epsilon.")
    public let weightDecay = RecipeKey("weight_decay", 0.01, .within(0, 1000), "Decoupled weight decay (matrices only).")
    public let momentum = RecipeKey("momentum", 0.0, .within(0, 1, openHigh: true), "SGD momentum.")
    public let gradClip = RecipeKey("grad_clip", 1.0, .within(0, 1e12), "Clip the global gradient norm (0 = off).")
    public let seed = RecipeKey(Settings.seed, default: 1234)
    public let out = RecipeKey("out", "sft-dist-out", .nonEmpty, "Output directory (metrics.jsonl, loss.svg, model/).", resume: .mayChange)
    public let maxLength = RecipeKey(Settings.maxLength, default: 64)
    public let truncation = RecipeKey("truncation", Truncation.right, .cases, "Truncation of over-long examples.")
    public let packing = RecipeKey("packing", false, .bool, "Pack several examples per row instead of padding.")
    public let chatTemplate = RecipeKey("chat_template", ChatTemplate.auto, .oneOf(ChatTemplate.names),
                                        "Template for {messages} data (auto: the model's own).")
    public let datasetTextField = RecipeKey("dataset_text_field", JSONLReader.defaultTextField, .nonEmpty,
                                            "The field of plain-text rows, every token trained (TRL's dataset_text_field).")
    public let completionOnlyLoss = RecipeKey("completion_only_loss", true, .bool,
                                              "On {prompt, completion} rows train the completion only (--no-completion-only-loss: every token, the prompt too).")
    public let assistantOnlyLoss = RecipeKey("assistant_only_loss", true, .bool,
                                             "On {messages} rows train the assistant turns only (--no-assistant-only-loss: every token, TRL's default).")
    public let objective = RecipeKey("objective", "nll", .oneOf(ObjectiveRegistry.names), "Training objective (see README).")
    public let objectiveArgs = RecipeKey("objective_args", [String: String](), .keyValues,
                                         "Objective parameter key=value (repeatable).", flag: "objective-arg")
    public let refModel = RecipeKey<String?>("ref_model", nil, .optionalPath, "Reference model directory for objectives that need one.",
                                             resume: .mayChange)   // the path may change; the weights' checksum is compared (Checkpointer.check)
    public let syncRefModel = RecipeKey("sync_ref_model", false, .bool,
                                        "Move the reference model towards the trained one every ref_model_sync_steps steps: (1 − α)·θ_ref + α·θ (TRL's sync_ref_model, TR-DPO).")
    public let refModelMixupAlpha = RecipeKey("ref_model_mixup_alpha", 0.6, .within(0, 1, openLow: true), "With sync_ref_model: α, the trained weights' share (TRL's; 1 replaces the reference).")
    public let refModelSyncSteps = RecipeKey("ref_model_sync_steps", 512, .within(1...100_000_000), "With sync_ref_model: optimizer steps between updates of the reference (TRL's).")
    public let precomputeRefLogProbs = RecipeKey("precompute_ref_log_probs", false, .bool,
                                                 "Score the reference's log-probs of the training and held-out pairs (dpo, and its --eval-data pair sets) or labelled rows (kto with loss_type=apo_zero_unpaired, or kl_pairing=fixed, then their KL pairs too) once before the first step, then release the reference model (TRL's).",
                                                 resume: .mayChange)   // the same reference either way (its checksum is compared): rounding only
    public let precomputeRefBatchSize = RecipeKey("precompute_ref_batch_size", 0, .within(0...1_000_000),
                                                  "With precompute_ref_log_probs: pairs (kto: rows) per forward of the scoring pass (TRL's; 0: micro_batch_size rows).",
                                                  resume: .mayChange)
    public let selection = RecipeKey("selection", "none", .oneOf(SelectionRegistry.names),
                                     "Online batch selection over a candidate pool (see README).")
    public let selectionPool = RecipeKey("selection_pool", 4, .within(1...1024), "Candidates per step = this × batch_size.")
    public let selectionArgs = RecipeKey("selection_args", [String: String](), .keyValues,
                                         "Selection parameter key=value (repeatable).", flag: "selection-arg")
    public let evalEvery = RecipeKey("eval_every", -1, .within(-1...100_000_000),
                                     "Evaluate every N steps (0: before and after only; -1: every ceil(steps/5), four times during a run of 20 steps or more).", resume: .mayChange)
    public let evalExamples = RecipeKey(Settings.generationExamples.named("eval_examples", help: "Held-out examples used for generation accuracy, and under grpo, rloo and gmpo the prompts their evaluation rolls out (0: none)."),
                                        default: 200, resume: .mayChange)
    public let maxNewTokens = RecipeKey(Settings.maxNewTokens.named("max_new_tokens", help: "Generation length in evaluation (gkd's samples: max_completion_length)."),
                                        default: 12, resume: .mustMatchWhen { r in
                                            r.objective == "spin" || (r.selfTrain != "none" && r.selfTrainArgs["max_new_tokens"] == nil)
                                        })
    public let evalData = RecipeKey("eval_data", NamedFiles(), .namedFiles,
                                    "Named held-out set NAME=FILE (repeatable): loss and exact match per set at every evaluation, and a retention table.",
                                    resume: .mayChange)
    public let checksumEvery = RecipeKey(Settings.everySteps.named("checksum_every", help: "Compare replica checksums every N steps (0: end only)."),
                                         default: 50, resume: .mayChange)
    public let logEvery = RecipeKey("log_every", 10, .within(1...100_000_000), "Progress line every N steps when not on a terminal.",
                                    resume: .mayChange)
    // The data's hash is compared on resume: skipping lines that change it is refused there.
    public let skipBadLines = RecipeKey("skip_bad_lines", false, .bool, "Skip and count malformed JSONL lines instead of stopping.", resume: .mayChange)
    // A checkpoint made under abort had no non-finite step; "set nan_policy: skip" is the advice
    // the abort gives, and was refused on resume.
    public let nanPolicy = RecipeKey("nan_policy", NaNPolicy.abort, .cases, "On a non-finite loss or gradient.", resume: .mayChange)
    public let nanSkipLimit = RecipeKey("nan_skip_limit", 10, .within(0...100_000_000),
                                        "With nan_policy skip: stop the run (exit 2) after this many skipped steps in a row, when the weights themselves give non-finite values (0: never).",
                                        resume: .mayChange)
    public let overlapGradSync = RecipeKey("overlap_grad_sync", true, .bool, "Start each block's gradient sum while backward continues.")
    public let freeze = RecipeKey<String?>("freeze", nil, .optionalRegex,
                                           "Freeze the parameters whose HF name this regular expression matches (searched, as re.search).")
    public let trainable = RecipeKey<String?>("trainable", nil, .optionalRegex,
                                              "Train only the parameters whose HF name this regular expression matches (--freeze then removes some).")
    public let l2Init = RecipeKey("l2_init", 0.0, .within(0, 1e6), "λ of the penalty λ/2·‖θ − θ₀‖² towards the initial weights (0: off).")
    public let ema = RecipeKey("ema", 0.0, .within(0, 1, openHigh: true),
                               "Decay of an exponential moving average of the weights, saved as OUT/model-ema/ (0: off).")
    // BEMA (arXiv 2508.00180): TRL's BEMACallback arguments, prefixed (BiasCorrectedEMA.swift).
    public let bema = RecipeKey("bema", false, .bool, "Keep a bias-corrected EMA of the weights (BEMA, TRL's BEMACallback), saved as OUT/bema/.")
    public let bemaUpdateFreq = RecipeKey("bema_update_freq", 400, .within(1...100_000_000), "With bema: steps between updates of the average (φ).")
    public let bemaEmaPower = RecipeKey("bema_ema_power", 0.5, .within(0, 1000), "With bema: κ of the EMA's weight β_t = (lag + multiplier·t)^−κ (0: the EMA is the weights).")
    public let bemaBiasPower = RecipeKey("bema_bias_power", 0.2, .within(0, 1000), "With bema: η of the correction's weight α_t = (lag + multiplier·t)^−η (0: α = 1).")
    public let bemaLag = RecipeKey("bema_lag", 10, .within(0...100_000_000), "With bema: ρ, the schedules' starting age.")
    public let bemaUpdateAfter = RecipeKey("bema_update_after", 0, .within(0...100_000_000), "With bema: τ, steps before θ_0 and the EMA are taken (burn-in).")
    public let bemaMultiplier = RecipeKey("bema_multiplier", 1.0, .within(0, 1e6, openLow: true), "With bema: γ, the schedules' step multiplier.")
    public let bemaMinEmaMultiplier = RecipeKey("bema_min_ema_multiplier", 0.0, .within(0, 1), "With bema: the smallest β_t.")
    public let bemaUpdateRefModel = RecipeKey("bema_update_ref_model", false, .bool, "With bema: replace the reference model by the average every bema_ref_model_update_freq steps (TRL's experimental update_ref_model).")
    public let bemaRefModelUpdateFreq = RecipeKey("bema_ref_model_update_freq", 400, .within(1...100_000_000), "With bema_update_ref_model: steps between replacements of the reference.")
    public let bemaRefModelUpdateAfter = RecipeKey("bema_ref_model_update_after", 0, .within(0...100_000_000), "With bema_update_ref_model: the first step the reference may be replaced at.")
    public let saveFormat = RecipeKey("save_format", ModelDirectory.SaveFormat.native, .cases,
                                      "Final model format (hf adds Hugging Face tokenizer files for the byte tokenizer).", resume: .mayChange)
    public let saveEvery = RecipeKey(Settings.everySteps.named("save_every", help: "Write a checkpoint to OUT/checkpoints/ every N steps (0: none)."),
                                     default: 0, resume: .mayChange)
    public let keepLast = RecipeKey("keep_last", 3, .within(0...1_000_000), "Checkpoints to keep, oldest deleted first (0: all).", resume: .mayChange)
    public let resume = RecipeKey<String?>("resume", nil, .optionalPath,
                                           "Continue from a checkpoint directory, or \"latest\" in OUT/checkpoints/.", resume: .mayChange)
    public let unlabelled = RecipeKey<String?>("unlabelled", nil, .optionalPath,
                                               "Unlabelled prompts JSONL ({prompt} or {messages} without the answer) for --self-train semievol or superhf.",
                                               resume: .mayChange)   // its bytes are compared (Checkpointer.check)
    public let selfTrain = RecipeKey("self_train", "none", .oneOf(SelfTrainMethod.names),
                                     "Train on the model's own answers: semievol, rft, ssr, s3ft, superhf (see README, Self-training).")
    public let selfTrainEvery = RecipeKey("self_train_every", 100, .within(1...100_000_000),
                                          "Steps between self-training rounds (a round before steps 0, N, 2N, ...).")
    public let selfTrainScorer = RecipeKey<String?>("self_train_scorer", nil, .oneOfOrUnset(SelfTrainScoring.names),
                                                    "Scorer that normalises, checks or accepts the model's answers in self-training: a --reward name (arguments NAME.key=value by --reward-arg).")
    public let selfTrainArgs = RecipeKey("self_train_args", [String: String](), .keyValues,
                                         "Self-training parameter key=value (repeatable): k, temperature, top_p, ratio, percentile, prompts, max_new_tokens, top_k.",
                                         flag: "self-train-arg")
    public let zero = RecipeKey("zero", 0, .within(0...2),
                                "ZeRO stage: 1 shards AdamW's moments over ranks, 2 the gradients as well (0: off).", resume: .mayChange)
    public let recompute = RecipeKey("recompute", false, .bool,
                                     "Keep only each transformer block's input and re-run its forward in backward (less activation memory).", resume: .mayChange)
    public let watchdogSeconds = RecipeKey("watchdog_seconds", 300.0, .within(0, 1e7),
                                           "Abort the job when a collective waits this many seconds (0: off); under an address-space limit, also when a matrix product makes no progress for half of it.", resume: .mayChange, flag: "watchdog")
    public let loraRank = RecipeKey("lora_rank", 0, .within(0...65536), "Train LoRA adapters of this rank instead of the weights (0: full fine-tuning).")
    public let loraAlpha = RecipeKey("lora_alpha", 16.0, .within(0, LoRAConfig.maxAlpha, openLow: true), "LoRA α: the adapters' update is scaled by α / rank.")
    public let loraDropout = RecipeKey("lora_dropout", 0.0, .within(0, 1, openHigh: true), "Dropout on the LoRA adapters' input in training.")
    public let loraTargets = RecipeKey<ModuleList?>("lora_targets", nil, .moduleList,
                                                "Modules LoRA adapts, comma-separated HF names (a YAML list in a recipe), or all-linear for every projection of the blocks, as peft (default: c_attn for GPT-2, q_proj,v_proj for Llama).")
    public let mergeLora = RecipeKey("merge_lora", false, .bool, "Also write OUT/model-merged/: the base with the adapters merged in (HF format).",
                                     resume: .mayChange)
    // NEFTune (arXiv 2310.05914): transformers' TrainingArguments name; 0 is off (transformers: None).
    public let neftuneNoiseAlpha = RecipeKey("neftune_noise_alpha", 0.0, .within(0, 1e6),
                                             "NEFTune: uniform noise of α/√(L·d) on the token embeddings in training forwards (L the sequence's tokens, d the width; 0: off).")

    // Rollouts during training (issue 12: Rollouts/, objectives that declare `requirements.rollouts`).
    public let prompts = RecipeKey<String?>("prompts", nil, .optionalPath, "Prompts JSONL for rollouts ({prompt} or {messages}; default: the prompts of --data; its bytes are hashed into checkpoints, and a resumed run must read the same).",
                                            resume: .mayChange)   // the path may change; the bytes are compared (Checkpointer.check)
    public let rollouts = RecipeKey("rollouts", 8, .within(1...4096), "Rollouts sampled per prompt (G, at least 2 for the group objectives; online-dpo's pair: 2 and a2po's one answer, which they set); --batch-size counts sequences, batch/G prompts.")
    // The trainer divides the logits by it: below 1e-6 logits of ordinary size overflow float32
    // (1e-40 is subnormal, 1e-50 rounds to 0).
    public let rolloutTemperature = RecipeKey("rollout_temperature", 1.0, .within(1e-6, 1000), "Sampling temperature of the rollouts (the log-probs are taken at it, but online-dpo's at the raw logits, as TRL's, and gkd's divergence at 1).")
    public let rolloutTopP = RecipeKey("rollout_top_p", 1.0, .within(0, 1, openLow: true), "Nucleus (top-p) mass of the rollouts.")
    public let rolloutTopK = RecipeKey("rollout_top_k", 0, .within(0...1_000_000), "Sample each rollout token from the k most likely (0: no limit; TRL's top_k).")
    public let maxCompletionLength = RecipeKey("max_completion_length", 16, .within(1...65_536), "Tokens a rollout may generate.")
    // TRL's num_generations_eval; read by grpo's and rloo's evaluation (RolloutProducer+Evaluation.swift).
    public let evalRollouts = RecipeKey("eval_rollouts", -1, .within(-1...4096), "Rollouts per held-out prompt when grpo, rloo or gmpo evaluates (TRL's num_generations_eval; -1: as --rollouts, a2po's one answer; 0: the held-out NLL instead).", resume: .mayChange)
    public let stepsPerGeneration = RecipeKey("steps_per_generation", 1, .within(1...4096), "Step batches one generation of rollouts is split into, trained in order (× num_iterations steps per generation; later steps are off-policy: importance ratio to the behaviour log-probs). Optimizer steps, where TRL's counts micro-batches (its default: gradient_accumulation_steps, one optimizer step).")
    public let numIterations = RecipeKey("num_iterations", 1, .within(1...1024), "Times each generation is trained on (TRL's num_iterations, GRPO's μ): steps_per_generation × num_iterations optimizer steps per generation, its slices in order each time.")
    public let maskTruncatedCompletions = RecipeKey("mask_truncated_completions", false, .bool, "Train no token of a rollout that reached max_completion_length without an end token (TRL's mask_truncated_completions, DAPO's overlong filtering); it still counts in its group's advantages and in completions/*.")
    public let rewards = RecipeKey("rewards", [String](), .rewardSpecs, "Reward function NAME or NAME=WEIGHT (repeatable; a YAML list).", flag: "reward")
    public let rewardArgs = RecipeKey("reward_args", [String: String](), .keyValues, "Reward argument NAME.key=value, or key=value with one reward (repeatable).", flag: "reward-arg")
    public let scaleRewards = RecipeKey("scale_rewards", RewardScaling.group, .cases,
                                        "Advantage scaling (TRL's scale_rewards): std of the group, of the batch, or none (Dr.GRPO); TRL's true/false read as group/none.")
    public let multiObjectiveAggregation = RecipeKey("multi_objective_aggregation", RewardAggregation.sumThenNormalize, .cases,
                                                     "Several reward functions (TRL's multi_objective_aggregation): sum the weighted rewards, then scale_rewards; or z-score each function in its group, sum with the weights, and scale by the generation's std (GDPO; scale_rewards unused).")
    public let scoredData = RecipeKey("scored_data", false, .bool, "Train grpo on --data's rows as pre-generated, pre-scored samples (each with reward and group, or advantage): no sampling, ratio 1.")

    public init() {}
}

extension Limits where Value == Bool {
    static var bool: Limits { Limits("true or false") { _ in true } }
}

extension Limits where Value == String? {
    /// Unset, or a non-empty path.
    static var optionalPath: Limits { Limits("a non-empty path") { $0.map { !$0.isEmpty } ?? true } }
}

extension Limits where Value == String? {
    /// Unset, or a regular expression that compiles (`ParameterSelection`).
    /// Given more than once, the alternation of the patterns, each in its own group (an inline
    /// option such as `(?i)` stays inside its pattern): what any of them matches.
    static var optionalRegex: Limits {
        Limits("a regular expression", union: { patterns in
            let distinct = firstOccurrences(patterns)
            return distinct.count == 1 ? distinct[0] : distinct.map { "(?:\($0))" }.joined(separator: "|")
        }) { $0.map(ParameterSelection.isValidPattern) ?? true }
    }
}

extension Limits where Value == String? {
    /// Unset, or one of `names`.
    static func oneOfOrUnset(_ names: [String]) -> Limits { Limits("one of \(names.joined(separator: ", "))") { $0.map(names.contains) ?? true } }
}

extension Limits where Value == ModuleList? {
    /// Unset, or comma-separated module names (`LoRATraining.targets`).
    /// Given more than once, every module any of them names (all-linear holds every other).
    static var moduleList: Limits {
        Limits("comma-separated module names (in a recipe, or a YAML list of names)", union: { lists in
            let names = lists.flatMap { LoRATraining.targets($0) ?? [$0] }
            if names.contains(LoRAConfig.allLinear) { return LoRAConfig.allLinear }
            return firstOccurrences(names).joined(separator: ",")
        }) { $0.map { $0.names != nil } ?? true }
    }
}

extension Limits where Value == [String: String] {
    static var keyValues: Limits { Limits("key=value pairs (a YAML mapping of names to scalars, or lists of scalars under loss_type and loss_weights)") { _ in true } }
}

/// `values` without repeats, each where it first occurs (the selection flags' unions).
private func firstOccurrences(_ values: [String]) -> [String] {
    var seen = Set<String>()
    return values.filter { seen.insert($0).inserted }
}
