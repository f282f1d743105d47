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
}
