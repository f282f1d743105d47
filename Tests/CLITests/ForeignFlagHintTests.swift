import XCTest

/// `train` answers transformers', TRL's and peft's flag names with its own (ForeignNames), in
/// the one line an unknown option gets; other commands, where the name may mean another
/// setting (`generate --temperature` is generation's own), are left as they were.
final class ForeignFlagHintTests: XCTestCase {
    func testTrainAnswersAnotherLibrarysFlagWithOurs() {
        let cases = [
            (["train", "--learning-rate", "1e-3"], "Unknown option '--learning-rate' (transformers: learning_rate is --lr here)"),
            (["--max-steps", "3"], "Unknown option '--max-steps' (transformers: max_steps is --steps here)"),
            (["train", "--lora-target-modules", "q_proj"], "Unknown option '--lora-target-modules' (TRL: lora_target_modules is --lora-targets here)"),
            (["train", "--reward-funcs", "task"], "Unknown option '--reward-funcs' (TRL: reward_funcs is --reward here)"),
            (["train", "--warmup-ratio", "0.1"], "Unknown option '--warmup-ratio' (transformers: warmup_ratio is --warmup-steps here: a count of steps, warmup_ratio × steps)"),
            (["train", "--epochs", "2"], "Unknown option '--epochs' (Keras: epochs is --num-train-epochs here)"),
            (["train", "--truncation-mode", "keep_end"], "Unknown option '--truncation-mode' (TRL: truncation_mode is --truncation here: keep_start is right (the default), keep_end is left; drop leaves such rows out)"),
            // Whole: the hint listing every loss type was cut at 280 characters.
            (["train", "--loss-type", "ipo"], "Unknown option '--loss-type' (TRL: loss_type is --objective-arg here: --objective-arg loss_type=… with grpo (default dapo, as TRL's), relift, dpo, cpo, online-dpo (default sigmoid) or kto, types in the README's Objectives table; SFTConfig's loss_type=dft is --objective dft)"),
            (["train", "--padding-free"], "Unknown option '--padding-free' (TRL: padding_free has no counterpart here: padding enters neither attention nor the loss here; --packing packs several examples per row, attention kept within each)"),
            (["train", "--objective", "dpo", "--beta", "0.1"],
             "Unknown option '--beta' (TRL: beta is --objective-arg here: --objective-arg beta=β: dpo's, kto's and spin's β (default 0.1), grpo's, gmpo's and rloo's KL coefficient (default 0, 0 and 0.05, as TRL's), gkd's divergence mix (default 0.5); uft's and otr's are their own (README))"),
            (["train", "--vllm-mode", "colocate"], "Unknown option '--vllm-mode' (TRL: vllm_mode has no counterpart here: no vLLM: rollouts are sampled by sft-dist's own KV-cache generation, sharded over the ranks, with the trained weights)"),
            (["train", "--entropy-coef", "0.01"],
             "Unknown option '--entropy-coef' (TRL: entropy_coef is --objective-arg here: --objective-arg entropy_coef=c with grpo (TRL's entropy bonus); uft's and prefix-rft's entropy_coef are their own)"),
            (["train", "--label-smoothing-factor", "0.1"], "Unknown option '--label-smoothing-factor' (transformers: label_smoothing_factor is --objective-arg here: --objective-arg label_smoothing=ε with the nll objective)"),
            (["train", "--dataset-name", "trl-lib/Capybara"], "Unknown option '--dataset-name' (TRL's scripts: dataset_name has no counterpart here: sft-dist reads JSONL files, not the Hub: save the dataset with datasets' to_json(FILE, lines=True) and give --data FILE)"),
            // A switch given TRL's command-line value ("Unexpected argument 'false'").
            (["train", "--completion-only-loss", "false"], "--completion-only-loss takes no value (got false): leave it out, or give --no-completion-only-loss where --help lists it"),
            (["train", "--packing", "True"], "--packing takes no value (got True): give --packing alone"),
        ]
        for (args, line) in cases {
            let r = CLI.sftDist(args + ["--dry-run"])
            XCTAssertEqual(r.status, 1, r.all)
            XCTAssertEqual(r.stderr, "sft-dist: error: " + line + "\n", r.all)
        }
        let other = CLI.sftDist(["eval", "--model", "tiny", "--learning-rate", "1"])
        XCTAssertEqual(other.status, 1, other.all)
        XCTAssertFalse(other.stderr.contains("transformers"), other.all)
        // Every flag a hint names is one of train's.
        let help = CLI.sftDist(["train", "--help"]).stdout
        for flag in ["--lr", "--steps", "--micro-batch-size", "--batch-size", "--grad-clip", "--beta1", "--beta2", "--adam-eps",
                     "--schedule", "--min-lr-ratio", "--log-every", "--eval-every", "--save-every", "--keep-last", "--resume",
                     "--recompute", "--out", "--model", "--max-length", "--rollouts", "--rollout-temperature", "--rollout-top-p",
                     "--rollout-top-k", "--reward", "--lora-rank", "--lora-targets"] {
            XCTAssertTrue([" ", "\n", "/"].contains { help.contains("  \(flag)\($0)") }, "train has no \(flag)")
        }
    }

    /// `generate` and `eval` answer transformers' generate() names with theirs, from their own
    /// table: train's hints are not given there, nor theirs to another command.
    func testGenerateAndEvalAnswerTransformersGenerateNames() {
        let cases = [
            (["generate", "--model", "tiny", "--prompt", "a", "--do-sample"],
             "Unknown option '--do-sample' (transformers: do_sample is --temperature here: --temperature T > 0 samples; 0, the default, is greedy)"),
            (["generate", "--model", "tiny", "--prompt", "a", "--max-length", "9"],
             "Unknown option '--max-length' (transformers: max_length is --max-new-tokens here: it counts new tokens only, where max_length counts the prompt too)"),
            (["eval", "--model", "tiny", "--data", "x.jsonl", "--num-return-sequences", "4"],
             "Unknown option '--num-return-sequences' (transformers: num_return_sequences is --samples here)"),
            (["generate", "--model", "tiny", "--prompt", "a", "--learning-rate", "1"], "Unknown option '--learning-rate'"),
            (["score", "--model", "tiny", "--data", "x.jsonl", "--do-sample"], "Unknown option '--do-sample'"),
            // A required flag missing beside the other library's name: that name's line.
            (["eval", "--model", "tiny", "--num-return-sequences", "4"],
             "Unknown option '--num-return-sequences' (transformers: num_return_sequences is --samples here)"),
            (["generate", "--prompt", "a", "--do-sample"],
             "Unknown option '--do-sample' (transformers: do_sample is --temperature here: --temperature T > 0 samples; 0, the default, is greedy)"),
            (["eval", "--model", "tiny", "--samples", "4"], "Missing expected argument '--data <data>'"),
            // generate's own check of --prompt runs before the parser names an unknown flag.
            (["generate", "--model", "tiny", "--do-sample"],
             "Unknown option '--do-sample' (transformers: do_sample is --temperature here: --temperature T > 0 samples; 0, the default, is greedy)"),
            (["generate", "--model", "tiny"], "give exactly one of --prompt or --prompts"),
        ]
        for (args, line) in cases {
            let r = CLI.sftDist(args)
            XCTAssertEqual(r.status, 1, r.all)
            XCTAssertEqual(r.stderr, "sft-dist: error: " + line + "\n", r.all)
        }
        // eval's --max-length is its own (the examples' length), and says where generation's is.
        XCTAssertTrue(CLI.sftDist(["eval", "--help"]).stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ").contains("answer's length is --max-new-tokens"))
        for (command, flags) in [("generate", ["--temperature", "--max-new-tokens"]), ("eval", ["--temperature", "--samples", "--max-new-tokens"])] {
            let help = CLI.sftDist([command, "--help"]).stdout
            for flag in flags { XCTAssertTrue(help.contains("  \(flag) "), "\(command) has no \(flag)") }
        }
    }

    /// train is the default subcommand, so a misspelt one parsed as a stray argument to train.
    func testAMisspeltSubcommandIsNamed() {
        // Alone, with more stray words, or behind a flag train does not have.
        for (args, near) in [(["trian", "--steps", "2"], "train"), (["evl", "--model", "tiny"], "eval"), (["merge-lroa", "a", "b"], "merge-lora"),
                             (["generat", "--model", "tiny", "--prompt", "hi"], "generate")] {
            let r = CLI.sftDist(args)
            XCTAssertEqual(r.status, 1, r.all)
            XCTAssertEqual(r.stderr, "sft-dist: error: no subcommand '\(args[0])'; did you mean '\(near)'?\n", r.all)
        }
        // Nothing near: the parser's line as it was.
        XCTAssertEqual(CLI.sftDist(["xyzzy"]).stderr, "sft-dist: error: Unexpected argument 'xyzzy'\n")
    }
}
