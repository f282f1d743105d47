import Foundation
import XCTest

/// A flag that would do nothing is refused even when given at its default value: a flag is
/// always deliberate (`--selection-pool 4` without `--selection` trained as if absent). A
/// recipe file may still list keys at their defaults — a run's own OUT/recipe.yaml lists all of
/// them and must run again as it is.
final class FlagsGivenAtDefaultTests: XCTestCase {
    func testFlagsThatWouldDoNothingAreRefusedAtTheirDefaults() throws {
        let dir = CLI.tempDir("flags-at-default")
        let data = dir + "/d.jsonl"
        try "{\"prompt\": \"add 1 2 =\", \"completion\": \" 3\"}\n".write(toFile: data, atomically: true, encoding: .utf8)
        let scored = dir + "/scored.jsonl"
        try ("{\"prompt\": \"add 1 2 =\", \"completion\": \" 3\", \"reward\": 1, \"group\": 1}\n"
             + "{\"prompt\": \"add 1 2 =\", \"completion\": \" 4\", \"reward\": 0, \"group\": 1}\n").write(toFile: scored, atomically: true, encoding: .utf8)
        let train = ["train", "--model", "tiny", "--dry-run", "--out", dir + "/out"]
        let cases: [([String], String)] = [
            (train + ["--selection-pool", "4"], "--selection-pool needs a selector (--selection NAME): without one it has no effect"),
            (train + ["--keep-last", "3"], "--keep-last prunes checkpoints, which need save_every"),
            (train + ["--lora-rank", "2", "--save-format", "hf"], "--save-format hf chooses the full model's files; a LoRA run writes model/ as a peft adapter"),
            (train + ["--optimizer", "sgd", "--beta1", "0.9"], "--beta1 is AdamW's (--optimizer adamw)"),
            // Features that had no check at all:
            (train + ["--schedule", "constant", "--min-lr-ratio", "0.2"], "--min-lr-ratio is where the cosine and linear schedules end"),
            (train + ["--schedule", "constant", "--min-lr-ratio", "0.1"], "--min-lr-ratio is where the cosine and linear schedules end"),
            (train + ["--data", data, "--heldout-fraction", "0", "--eval-every", "1"],
             "--eval-every acts on the held-out set, and heldout_fraction 0 without --heldout or --eval-data leaves none"),
            (train + ["--data", data, "--heldout-fraction", "0", "--eval-examples", "50"], "--eval-examples acts on the held-out set"),
            (["make-data", "--out", "-", "--count", "2", "--noise-kind", "token"], "--noise-kind chooses how --noise corrupts rows"),
            (["make-data", "--out", "-", "--count", "2", "--noise-kind", "completion"], "--noise-kind chooses how --noise corrupts rows"),
            // The fraction at its default where nothing is split.
            (train + ["--data", data, "--heldout", data, "--heldout-fraction", "0.05"], "--heldout-fraction has no effect with heldout"),
            (train + ["--heldout-fraction", "0.05"], "--heldout-fraction has no effect on the built-in data"),
            // LoRA's flags at their defaults without --lora-rank (or with --lora-rank 0).
            (train + ["--lora-alpha", "16"], "--lora-alpha needs lora_rank (--lora-rank r) > 0"),
            (train + ["--lora-dropout", "0"], "--lora-dropout needs lora_rank"),
            (train + ["--no-merge-lora"], "--merge-lora needs lora_rank"),
            (train + ["--lora-rank", "0", "--lora-alpha", "16"], "--lora-alpha needs lora_rank"),
            // Rollout flags at their defaults with an objective that does not sample.
            (train + ["--rollouts", "8"], "--rollouts is read by the objectives that sample rollouts"),
            (train + ["--rollout-temperature", "1.0"], "--rollout-temperature is read by the objectives that sample rollouts"),
            (train + ["--steps-per-generation", "1"], "--steps-per-generation is read by the objectives that sample rollouts"),
            (train + ["--scale-rewards", "group"], "--scale-rewards is read by the objectives that sample rollouts"),
            // Scored data samples nothing, so its sampling flags did nothing (losses unchanged).
            (train + ["--data", scored, "--scored-data", "--objective", "grpo", "--rollout-top-p", "0.3"],
             "--rollout-top-p acts on sampling, and scored_data (--scored-data) trains on --data's samples without sampling"),
            (train + ["--data", scored, "--scored-data", "--objective", "grpo", "--rollouts", "2"], "--rollouts acts on sampling"),
            // Self-training other than superhf scores with --self-train-scorer; its rewards did nothing.
            (train + ["--self-train", "rft", "--self-train-scorer", "task", "--reward", "exact"],
             "--reward is read by the objectives that sample rollouts (grpo, rloo, gmpo, a2po, online-dpo, chord, srft, uft, prefix-rft, relift), and by self-training superhf"),
            // Self-training's own max_new_tokens replaces --max-new-tokens, which then did nothing.
            (train + ["--self-train", "rft", "--self-train-scorer", "task", "--self-train-arg", "max_new_tokens=6",
                      "--eval-examples", "0", "--max-new-tokens", "30"], "--max-new-tokens is the length of generated answers"),
        ]
        for (args, needle) in cases {
            let r = CLI.sftDist(args)
            XCTAssertEqual(r.status, 1, "\(args): \(r.all)")
            XCTAssertEqual(CLI.occurrences(of: needle, in: r.stderr), 1, "\(args): \(r.all)")
        }
        // What stays free: a held-out set of --eval-data, --eval-examples 0, --noise with its kind.
        for args in [train + ["--data", data, "--heldout-fraction", "0", "--eval-every", "1", "--eval-data", "x=\(data)"],
                     train + ["--data", data, "--heldout-fraction", "0", "--eval-examples", "0"],
                     train + ["--schedule", "linear", "--min-lr-ratio", "0.2"],
                     train + ["--data", scored, "--scored-data", "--objective", "grpo", "--scale-rewards", "group"],
                     train + ["--self-train", "rft", "--self-train-scorer", "task", "--max-new-tokens", "30"],
                     train + ["--self-train", "rft", "--self-train-scorer", "regex", "--reward-arg", "regex.pattern=[0-9]+"],
                     ["make-data", "--out", "-", "--count", "2", "--noise", "0.5", "--noise-kind", "token"]] {
            let r = CLI.sftDist(args)
            XCTAssertEqual(r.status, 0, "\(args): \(r.all)")
        }
    }

    /// A run's OUT/recipe.yaml names every key at its value, defaults included: it runs again.
    func testARunsSavedRecipeRunsAgain() throws {
        let dir = CLI.tempDir("saved-recipe")
        let first = CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--eval-examples", "0", "--out", dir + "/a"])
        XCTAssertEqual(first.status, 0, first.all)
        let saved = try String(contentsOfFile: dir + "/a/recipe.yaml", encoding: .utf8)
        XCTAssertTrue(saved.contains("selection_pool: 4\n") && saved.contains("min_lr_ratio: 0.1\n"), saved)
        let again = CLI.sftDist(["train", "--config", dir + "/a/recipe.yaml", "--out", dir + "/b", "--dry-run"])
        XCTAssertEqual(again.status, 0, again.all)
        // Keys a file set for features the flags switched off: the saved recipe was refused
        // (`lora_targets needs lora_rank`); they are written as comments, unused by the run.
        try "selection:\n  name: loss\n  pool: 2\nlora_rank: 4\nlora_targets: [c_attn, c_proj]\noptimizer: sgd\nmomentum: 0.5\n"
            .write(toFile: dir + "/r.yaml", atomically: true, encoding: .utf8)
        let switched = CLI.sftDist(["train", "--config", dir + "/r.yaml", "--model", "tiny", "--steps", "1", "--eval-examples", "0",
                                    "--selection", "none", "--lora-rank", "0", "--optimizer", "adamw", "--out", dir + "/c"])
        XCTAssertEqual(switched.status, 0, switched.all)
        let written = try String(contentsOfFile: dir + "/c/recipe.yaml", encoding: .utf8)
        XCTAssertTrue(written.contains("# selection_pool: 2\n") && written.contains("# lora_targets: c_attn,c_proj\n")
                      && written.contains("# momentum: 0.5\n"), written)
        let reread = CLI.sftDist(["train", "--config", dir + "/c/recipe.yaml", "--out", dir + "/d", "--dry-run"])
        XCTAssertEqual(reread.status, 0, reread.all)
    }

    /// A split that rounds to no held-out row (0.05 of 8) evaluates nothing, as heldout_fraction
    /// 0 does: --eval-every and --eval-examples were accepted and the run logged no evaluation.
    func testEvalFlagsWithASplitThatLeavesNoHeldOutRowAreRefused() throws {
        let dir = CLI.tempDir("eval-no-heldout")
        XCTAssertEqual(CLI.sftDist(["make-data", "--out", dir + "/d.jsonl", "--count", "8"]).status, 0)
        let base = ["train", "--model", "tiny", "--data", dir + "/d.jsonl", "--steps", "1", "--quiet"]
        for extra in [["--eval-every", "1"], ["--eval-every", "-1"], ["--eval-examples", "5"]] {
            let r = CLI.sftDist(base + extra + ["--out", dir + "/out"])
            XCTAssertEqual(r.status, 1, r.all)
            XCTAssertTrue(r.stderr.contains("\(extra[0]) acts on the held-out set, and the split of \(dir)/d.jsonl (heldout_fraction 0.05 of 8 rows) leaves none"), r.all)
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out/metrics.jsonl"))
        }
        XCTAssertEqual(CLI.sftDist(base + ["--eval-examples", "0", "--out", dir + "/ok"]).status, 0)
        // Turning evaluation off says what happens anyway: accepted (scripts pass it).
        XCTAssertEqual(CLI.sftDist(base + ["--eval-examples", "0", "--eval-every", "0", "--out", dir + "/off"]).status, 0)
        // A chat template for data without {messages} lays nothing out (the log said "as requested").
        let template = CLI.sftDist(base + ["--eval-examples", "0", "--chat-template", "llama3", "--out", dir + "/t"])
        XCTAssertEqual(template.status, 1, template.all)
        XCTAssertTrue(template.stderr.contains("--chat-template llama3 lays out {messages} rows, and the data has none"), template.all)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/t/metrics.jsonl"))
        // Unless the template lays out self-training's --unlabelled {messages} prompts.
        try "{\"messages\": [{\"role\": \"user\", \"content\": \"add 1 2 =\"}]}\n".write(toFile: dir + "/u.jsonl", atomically: true, encoding: .utf8)
        let unlabelled = CLI.sftDist(base + ["--eval-examples", "0", "--chat-template", "chatml", "--self-train", "superhf", "--objective", "superhf",
                                             "--reward", "format", "--unlabelled", dir + "/u.jsonl", "--self-train-arg", "prompts=1",
                                             "--self-train-arg", "k=2", "--self-train-arg", "max_new_tokens=2", "--out", dir + "/u"])
        XCTAssertFalse(unlabelled.stderr.contains("lays out {messages} rows"), unlabelled.all)
        XCTAssertEqual(unlabelled.status, 0, unlabelled.all)
    }

    /// Refusals added on 2026-12-04 spare a resumed run, whose keys must match a checkpoint
    /// accepted when it started: here lora_alpha at its default from a recipe file, then the
    /// same value as a flag on resume (refused in a new run).
    func testARunResumedWithAFlagAtItsDefaultIsNotRefused() throws {
        let dir = CLI.tempDir("resume-default-flag")
        try "lora_alpha: 16\n".write(toFile: dir + "/r.yaml", atomically: true, encoding: .utf8)
        let run = ["train", "--config", dir + "/r.yaml", "--model", "tiny", "--steps", "4", "--save-every", "2", "--eval-examples", "0",
                   "--quiet", "--out", dir + "/out"]
        XCTAssertEqual(CLI.sftDist(run).status, 0)
        let fresh = CLI.sftDist(run.map { $0 == dir + "/out" ? dir + "/fresh" : $0 } + ["--lora-alpha", "16"])
        XCTAssertEqual(fresh.status, 1, fresh.all)
        let resumed = CLI.sftDist(run + ["--lora-alpha", "16", "--resume", dir + "/out/checkpoints/step-000002"])
        XCTAssertEqual(resumed.status, 0, resumed.all)
    }
}
