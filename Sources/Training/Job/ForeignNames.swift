/// The names transformers' `TrainingArguments`, TRL's configs and peft's `LoraConfig` give
/// settings that `train` has under another name (issue 2 fixed `--lr`, `--steps` and the
/// batch flags before TRL's names were the rule). A user coming from those libraries types
/// theirs: the unknown key or flag is then answered with ours, where the edit-distance hint
/// offered `lora_rank` for `learning_rate`.
public enum ForeignNames {
    public struct Entry: Sendable {
        /// Their name, snake_case (`learning_rate`; the flag form is `--learning-rate`).
        public let theirs: String
        /// Ours, snake_case: a recipe key; nil where sft-dist has no such setting (the note says
        /// why, so the edit-distance hint does not offer a key that does something else).
        public let ours: String?
        public let library: String
        /// What differs beyond the name, if anything.
        public let note: String?
        init(_ theirs: String, _ ours: String, _ library: String, note: String? = nil) {
            self.theirs = theirs; self.ours = ours; self.library = library; self.note = note
        }
        init(none theirs: String, _ library: String, note: String) {
            self.theirs = theirs; ours = nil; self.library = library; self.note = note
        }
    }

    public static let entries: [Entry] = [
        Entry("learning_rate", "lr", "transformers"),
        Entry("max_steps", "steps", "transformers"),
        Entry("per_device_train_batch_size", "micro_batch_size", "transformers",
              note: "batch_size is the global batch; micro-batches per step follow from the two and the rank count"),
        Entry("gradient_accumulation_steps", "batch_size", "transformers",
              note: "not a count: batch_size is the global batch, and accumulation is batch_size ÷ (micro_batch_size × ranks)"),
        Entry("warmup_ratio", "warmup_steps", "transformers", note: "a count of steps, warmup_ratio × steps"),
        Entry("max_grad_norm", "grad_clip", "transformers"),
        Entry("label_smoothing_factor", "objective_args", "transformers", note: "--objective-arg label_smoothing=ε with the nll objective"),
        Entry("adam_beta1", "beta1", "transformers"),
        Entry("adam_beta2", "beta2", "transformers"),
        Entry("adam_epsilon", "adam_eps", "transformers"),
        Entry("lr_scheduler_type", "schedule", "transformers",
              note: "cosine decays to min_lr_ratio × the peak, and constant warms up first, as transformers' constant_with_warmup"),
        Entry("min_lr_rate", "min_lr_ratio", "transformers' cosine_with_min_lr"),
        Entry("logging_steps", "log_every", "transformers", note: "it paces the progress line; metrics.jsonl has a row every step"),
        Entry("eval_steps", "eval_every", "transformers"),
        Entry("save_steps", "save_every", "transformers"),
        Entry("save_total_limit", "keep_last", "transformers"),
        Entry("resume_from_checkpoint", "resume", "transformers"),
        Entry("gradient_checkpointing", "recompute", "transformers"),
        Entry("output_dir", "out", "transformers"),
        Entry("epochs", "num_train_epochs", "Keras"),
        Entry("max_epochs", "num_train_epochs", "PyTorch Lightning"),
        Entry("model_name_or_path", "model", "TRL"),
        Entry("max_seq_length", "max_length", "TRL before 0.20"),
        Entry("num_generations", "rollouts", "TRL"),
        Entry("num_generations_eval", "eval_rollouts", "TRL"),
        Entry("temperature", "rollout_temperature", "TRL's GRPOConfig"),
        Entry("top_p", "rollout_top_p", "TRL's GRPOConfig"),
        Entry("top_k", "rollout_top_k", "TRL's GRPOConfig"),
        Entry("reward_funcs", "rewards", "TRL"),
        Entry("reward_weights", "rewards", "TRL", note: "a weight per function, given with it: --reward NAME=WEIGHT (rewards: [NAME=WEIGHT, …])"),
        Entry("lora_r", "lora_rank", "TRL"),
        Entry("r", "lora_rank", "peft"),
        Entry("lora_target_modules", "lora_targets", "TRL"),
        Entry("target_modules", "lora_targets", "peft"),
        Entry("use_peft", "lora_rank", "TRL", note: "--lora-rank r > 0 trains LoRA adapters"),
        Entry("optim", "optimizer", "transformers", note: "adamw or sgd"),
        Entry("eval_strategy", "eval_every", "transformers", note: "a count of steps; 0 evaluates before and after only"),
        Entry("lr_scheduler_kwargs", "min_lr_ratio", "transformers", note: "the schedules' one argument, where cosine and linear end"),
        Entry(none: "max_prompt_length", "TRL",
              note: "a rollout's prompt gets max_length − max_completion_length tokens, cut as --truncation says"),
        // Method arguments: the edit-distance hint offered AdamW's beta1 for DPO's beta.
        Entry("beta", "objective_args", "TRL",
              note: "--objective-arg beta=β: dpo's, kto's and spin's β (default 0.1), grpo's, gmpo's and rloo's KL coefficient (default 0, 0 and 0.05, as TRL's), gkd's divergence mix (default 0.5); uft's and otr's are their own (README)"),
        Entry("kl_coef", "objective_args", "TRL's PPOConfig",
              note: "grpo's and rloo's KL coefficient is --objective-arg beta=β (superhf's kl_coefficient, asft's kl_weight)"),
        Entry("epsilon", "objective_args", "TRL",
              note: "--objective-arg epsilon=ε (and epsilon_high), the clip range of grpo, rloo, gmpo (log space), chord, relift, uft and prefix-rft"),
        Entry("epsilon_high", "objective_args", "TRL", note: "--objective-arg epsilon_high=ε with grpo, rloo, gmpo, chord, relift, uft or prefix-rft"),
        Entry("loss_type", "objective_args", "TRL",
              note: "--objective-arg loss_type=… with grpo (default dapo, as TRL's), relift, dpo, cpo, online-dpo (default sigmoid) or kto, types in the README's Objectives table; SFTConfig's loss_type=dft is --objective dft"),
        Entry("use_bias_correction_kl", "objective_args", "TRL",
              note: "--objective-arg use_bias_correction_kl=false with grpo (default true, as TRL 1.16's: the KL term times the importance ratio)"),
        // GKDConfig's method settings: gkd objective arguments; its teacher is --ref-model.
        Entry("lmbda", "objective_args", "TRL's GKDConfig", note: "--objective-arg lmbda=λ with gkd (default 0.5: the share of steps on the student's own answers)"),
        Entry("seq_kd", "objective_args", "TRL's GKDConfig", note: "--objective-arg seq_kd=true with gkd (the teacher's answers on the other steps)"),
        Entry("teacher_model_name_or_path", "ref_model", "TRL's GKDConfig", note: "gkd's teacher is --ref-model DIR"),
        // GRPOConfig's loss settings that are grpo objective arguments here, under TRL's names.
        Entry("delta", "objective_args", "TRL", note: "--objective-arg delta=δ with grpo (two-sided clipping; δ > 1)"),
        Entry("importance_sampling_level", "objective_args", "TRL", note: "--objective-arg importance_sampling_level=sequence with grpo (GSPO)"),
        Entry("top_entropy_quantile", "objective_args", "TRL", note: "--objective-arg top_entropy_quantile=ρ with grpo"),
        Entry("off_policy_mask_threshold", "objective_args", "TRL", note: "--objective-arg off_policy_mask_threshold=δ with grpo"),
        Entry("entropy_coef", "objective_args", "TRL",
              note: "--objective-arg entropy_coef=c with grpo (TRL's entropy bonus); uft's and prefix-rft's entropy_coef are their own"),
        Entry("use_adaptive_entropy", "objective_args", "TRL",
              note: "--objective-arg use_adaptive_entropy=true with grpo, with entropy_coef_min, entropy_coef_max, entropy_coef_delta and entropy_target"),
        Entry("entropy_target", "objective_args", "TRL", note: "--objective-arg entropy_target=H with grpo and use_adaptive_entropy=true"),
        Entry("sapo_temperature_pos", "objective_args", "TRL", note: "--objective-arg sapo_temperature_pos=τ with grpo and loss_type=sapo (and sapo_temperature_neg)"),
        Entry("sapo_temperature_neg", "objective_args", "TRL", note: "--objective-arg sapo_temperature_neg=τ with grpo and loss_type=sapo"),
        Entry("vespo_k_pos", "objective_args", "TRL", note: "--objective-arg vespo_k_pos=k with grpo and loss_type=vespo (and vespo_lambda_pos, vespo_k_neg, vespo_lambda_neg)"),
    ] + ["vespo_lambda_pos", "vespo_k_neg", "vespo_lambda_neg"].map {
        Entry($0, "objective_args", "TRL", note: "--objective-arg \($0)=… with grpo and loss_type=vespo")
    } + ["entropy_coef_min", "entropy_coef_max", "entropy_coef_delta"].map {
        Entry($0, "objective_args", "TRL", note: "--objective-arg \($0)=… with grpo and use_adaptive_entropy=true")
    } + [
        // GRPOConfig's generation and logging settings sft-dist has no counterpart for: the
        // edit-distance hint offered "seed" for use_vllm.
        Entry("generation_batch_size", "steps_per_generation", "TRL", note: "a generation is batch_size × steps_per_generation rollouts"),
        Entry(none: "min_p", "TRL", note: "rollouts sample with rollout_temperature, rollout_top_p and rollout_top_k"),
        Entry(none: "repetition_penalty", "TRL", note: "rollouts sample with rollout_temperature, rollout_top_p and rollout_top_k"),
        Entry(none: "generation_kwargs", "TRL", note: "rollouts sample with rollout_temperature, rollout_top_p and rollout_top_k"),
        Entry(none: "shuffle_dataset", "TRL", note: "the prompts of each step are drawn from the seed and the step"),
        Entry(none: "disable_dropout", "TRL", note: "the models train without dropout; LoRA's lora_dropout is refused beside objectives with a sampler ratio"),
        Entry(none: "max_tool_calling_iterations", "TRL", note: "no tool calling"),
        Entry(none: "log_completions", "TRL", note: "rollouts are not logged as text; metrics.jsonl holds their figures"),
    ] + ["use_vllm", "vllm_mode", "vllm_gpu_memory_utilization", "vllm_tensor_parallel_size", "vllm_max_model_length",
         "vllm_importance_sampling_correction", "vllm_importance_sampling_mode", "vllm_server_base_url", "vllm_server_host",
         "vllm_server_port"].map {
        Entry(none: $0, "TRL", note: "no vLLM: rollouts are sampled by sft-dist's own KV-cache generation, sharded over the ranks, with the trained weights")
    } + [
        // SFTConfig's data settings.
        Entry("truncation_mode", "truncation", "TRL", note: "keep_start is right (the default), keep_end is left; drop leaves such rows out"),
        Entry(none: "packing_strategy", "TRL", note: "--packing packs each step's examples in order, --batch-size still counting examples; TRL's bfd packs the dataset best-fit decreasing"),
        Entry(none: "padding_free", "TRL", note: "padding enters neither attention nor the loss here; --packing packs several examples per row, attention kept within each"),
        Entry(none: "pad_to_multiple_of", "TRL", note: "padding enters neither attention nor the loss here"),
        Entry(none: "pad_token", "TRL", note: "padding enters neither attention nor the loss here, so no pad token is needed"),
        Entry(none: "eval_packing", "TRL", note: "held-out rows are evaluated one example per row"),
        Entry(none: "eos_token", "TRL", note: "completions end with the tokenizer's eos_token (tokenizer_config.json), conversations with their chat template's end of turn"),
        Entry(none: "activation_offloading", "TRL", note: "activations live in host memory already; --recompute keeps only each block's input instead"),
        Entry(none: "dataset_name", "TRL's scripts", note: "sft-dist reads JSONL files, not the Hub: save the dataset with datasets' to_json(FILE, lines=True) and give --data FILE"),
        Entry(none: "dataset_num_proc", "TRL", note: "every rank tokenizes the rows as it reads them"),
        Entry(none: "model_init_kwargs", "TRL", note: "--model is loaded in float32 as it is"),
        Entry("label_smoothing", "objective_args", "TRL's DPOConfig",
              note: "--objective-arg label_smoothing=ε with dpo and loss_type robust or exo_pair (TRL 1.16's sigmoid ignores it), cpo or tpo; nll's label_smoothing is another quantity"),
        Entry("cpo_alpha", "objective_args", "TRL's CPOConfig", note: "--objective-arg cpo_alpha=… with --objective cpo"),
        Entry("simpo_gamma", "objective_args", "TRL's CPOConfig", note: "--objective-arg simpo_gamma=γ with --objective cpo and loss_type simpo"),
        Entry("tpo_alpha", "objective_args", "TRL's TPOConfig", note: "--objective-arg tpo_alpha=… with --objective tpo"),
        Entry("tpo_l_gamma", "objective_args", "TRL's TPOConfig", note: "--objective-arg tpo_l_gamma=γ with --objective tpo and loss_type tpo-l"),
        Entry("num_value_samples", "objective_args", "TRL's A2POConfig", note: "--objective-arg num_value_samples=N with --objective a2po"),
        Entry("filter_all_incorrect", "objective_args", "TRL's A2POConfig", note: "--objective-arg filter_all_incorrect=false with --objective a2po"),
        Entry("desirable_weight", "objective_args", "TRL's KTOConfig", note: "--objective-arg desirable_weight=λ_D with --objective kto"),
        Entry("undesirable_weight", "objective_args", "TRL's KTOConfig", note: "--objective-arg undesirable_weight=λ_U with --objective kto"),
        Entry(none: "train_sampling_strategy", "TRL's KTOConfig", note: "rows are drawn by the seeded uniform sampler under every objective (TRL's KTOTrainer reads them in file order)"),
        Entry("normalize_advantages", "objective_args", "TRL's RLOOConfig", note: "--objective-arg normalize_advantages=true with --objective rloo"),
        Entry("reward_clip_range", "objective_args", "TRL's RLOOConfig", note: "--objective-arg reward_clip_range=lo,hi with --objective rloo"),
        Entry("center_rewards_coefficient", "objective_args", "TRL's RewardConfig", note: "--objective-arg center_rewards_coefficient=λ with --objective reward"),
        Entry("reward_model_path", "rewards", "TRL", note: "a reward model is a reward function: --reward DIR[=WEIGHT]"),
        Entry("missing_eos_penalty", "objective_args", "TRL's OnlineDPOConfig", note: "--objective-arg missing_eos_penalty=… with --objective online-dpo"),
        Entry("discopop_tau", "objective_args", "TRL's DPOConfig", note: "--objective-arg discopop_tau=τ with dpo and loss_type discopop"),
        Entry("f_divergence_type", "objective_args", "TRL's DPOConfig", note: "--objective-arg f_divergence_type=… with dpo (reverse_kl, forward_kl, js_divergence, alpha_divergence)"),
        Entry("f_alpha_divergence_coef", "objective_args", "TRL's DPOConfig", note: "--objective-arg f_alpha_divergence_coef=α with dpo and f_divergence_type alpha_divergence"),
        Entry("ld_alpha", "objective_args", "TRL's DPOConfig", note: "--objective-arg ld_alpha=α with dpo"),
        Entry("loss_weights", "objective_args", "TRL's DPOConfig", note: "--objective-arg loss_weights=w1,w2 with dpo, one per loss_type (loss_type=sigmoid,sft)"),
        Entry(none: "rpo_alpha", "TRL's DPOConfig", note: "RPO is --objective-arg loss_type=sigmoid,sft --objective-arg loss_weights=1,α with dpo, as TRL 1.16 writes it"),
        Entry("use_weighting", "objective_args", "TRL's DPOConfig", note: "--objective-arg use_weighting=true with dpo (WPO)"),
        // Settings sft-dist does not have.
        Entry(none: "bf16", "transformers", note: "sft-dist computes in float32"),
        Entry(none: "fp16", "transformers", note: "sft-dist computes in float32"),
        Entry(none: "tf32", "transformers", note: "sft-dist computes in float32"),
        Entry(none: "report_to", "transformers", note: "every run writes OUT/metrics.jsonl and OUT/loss.svg"),
    ]

    /// transformers' `generate()` arguments under another name in `generate` and `eval`, by
    /// command (`ours` is the flag's name in snake_case: these commands have no recipe keys).
    public static let generationEntries: [String: [Entry]] = [
        "generate": [
            Entry("do_sample", "temperature", "transformers",
                  note: "--temperature T > 0 samples; 0, the default, is greedy"),
            Entry("max_length", "max_new_tokens", "transformers",
                  note: "it counts new tokens only, where max_length counts the prompt too"),
        ],
        "eval": [
            Entry("do_sample", "temperature", "transformers",
                  note: "--samples N draws N answers per prompt at --temperature (default 1); the pass@1 answer is greedy"),
            Entry("num_return_sequences", "samples", "transformers"),
            // (eval's --max-length is its own: the examples' length; its help names --max-new-tokens.)
        ],
    ]

    /// For `generate`'s or `eval`'s unknown flag `--name`: the hint, or nil.
    public static func generationFlagHint(_ name: String, command: String) -> String? {
        let snake = name.replacingOccurrences(of: "-", with: "_")
        guard let e = generationEntries[command]?.first(where: { $0.theirs == snake }) else { return nil }
        return hint(e, is: e.ours.map { "--" + $0.replacingOccurrences(of: "_", with: "-") })
    }

    /// For an unknown recipe key: ` (LIBRARY: NAME is "OURS" here…)`, or nil.
    public static func keyHint(_ name: String) -> String? {
        guard let e = entries.first(where: { $0.theirs == name }) else { return nil }
        return hint(e, is: e.ours.map { "\"\($0)\"" })
    }

    /// For `train`'s unknown flag `--name` (kebab-case, without the dashes): the hint, or nil.
    public static func flagHint(_ name: String) -> String? {
        let snake = name.replacingOccurrences(of: "-", with: "_")
        guard let e = entries.first(where: { $0.theirs == snake }) else { return nil }
        return hint(e, is: e.ours.map { "--" + flag($0) })
    }

    /// ` (LIBRARY: THEIRS is OURS here: note)`, OURS as the message spells it, or
    /// ` (LIBRARY: THEIRS has no counterpart here: note)`.
    static func hint(_ e: Entry, is ours: String?) -> String {
        " (\(e.library): \(e.theirs) " + (ours.map { "is \($0) here" } ?? "has no counterpart here") + (e.note.map { ": \($0)" } ?? "") + ")"
    }

    /// Our flag for a key: the key's own (`rewards` is `--reward`).
    static func flag(_ ours: String) -> String {
        Recipe.key(named: ours)?.flag ?? ours.replacingOccurrences(of: "_", with: "-")
    }
}
