import Foundation
import XCTest

/// GRPO end to end under real mpirun: rollouts, rewards and losses the same at 1, 2 and 4
/// ranks; kill -9 mid-generation and `--resume latest` continues with the same rollouts; bad
/// input refused at start-up with one line.
final class GRPOCLITests: XCTestCase {
    /// A warm start that answers the arithmetic tasks roughly (shared by the tests of one run).
    static let warm: String = {
        let dir = CLI.tempDir("grpo-warm")
        let r = CLI.sftDist(["train", "--model", "tiny", "--batch-size", "16", "--micro-batch-size", "8", "--eval-examples", "0",
                             "--eval-every", "0", "--quiet", "--lr", "1e-2", "--warmup-steps", "5", "--steps", "300", "--out", dir])
        precondition(r.status == 0, r.all)
        return dir + "/model"
    }()

    /// `numeric` with a 30 % tolerance: rollouts of one prompt often disagree, so groups carry
    /// signal; two generations of two steps each, so steps 2 and 4 reuse rollouts off-policy.
    static func grpo(_ extra: [String] = [], objective: String = "grpo") -> [String] {
        ["train", "--model", warm, "--objective", objective, "--reward", "numeric", "--reward-arg", "numeric.tolerance=0.3",
         "--reward", "format=0.1", "--rollouts", "4", "--batch-size", "16", "--micro-batch-size", "3", "--steps", "4",
         "--steps-per-generation", "2", "--max-completion-length", "6", "--lr", "3e-3", "--warmup-steps", "0",
         "--eval-examples", "0", "--eval-every", "0", "--quiet"] + extra
    }

    static let rolloutKeys = ["reward", "reward_std", "rewards/numeric/mean", "rewards/numeric/std", "rewards/format/mean",
                              "rewards/format/std", "accuracy", "frac_reward_zero_std", "completions/mean_length",
                              "completions/min_length", "completions/max_length", "completions/clipped_ratio",
                              "completions/mean_terminated_length", "completions/min_terminated_length",
                              "completions/max_terminated_length"]

    func testRolloutsRewardsAndLossesAreRankCountInvariant() throws {
        try assertRankCountInvariant(objective: "grpo")
    }

    /// CHORD adds demonstrations (expert share 0.2: 4 per step of 16 rollouts) and a μ schedule.
    func testCHORDIsRankCountInvariant() throws {
        try assertRankCountInvariant(objective: "chord", ["--objective-arg", "mu_decay=4", "--objective-arg", "mu_peak=0.5",
                                                          "--objective-arg", "mu_valley=0.05"])
    }

    func assertRankCountInvariant(objective: String, _ extra: [String] = []) throws {
        var runs: [[[String: Double]]] = []
        for n in [1, 2, 4] {
            let out = CLI.tempDir("\(objective)-n\(n)")
            let r = CLI.mpirun(n, Self.grpo(["--out", out] + extra, objective: objective), seconds: 180)
            XCTAssertEqual(r.status, 0, "-n \(n): \(r.all)")
            runs.append(CLI.trainingRows(out))
        }
        XCTAssertEqual(runs.map(\.count), [4, 4, 4])
        guard runs.allSatisfy({ $0.count == 4 }) else { return }
        // Something to learn from: a group with differing rewards, a gradient, reused rollouts off-policy.
        XCTAssertTrue(runs[0].contains { ($0["frac_reward_zero_std"] ?? 1) < 1 }, "every group had equal rewards")
        XCTAssertTrue(runs[0].contains { ($0["grad_norm"] ?? 0) > 1e-4 }, "no gradient in any step")
        XCTAssertEqual(runs[0][1]["generate_s"], 0, "step 2 reuses step 1's generation")
        // Demonstration sequences beside the rollouts: CHORD's own stream, SRFT's one per prompt
        // (UFT and Prefix-RFT reveal prefixes of them inside rollouts and log no such count).
        let expertKeys = ["chord", "srft"].contains(objective) ? ["expert_sequences"] : []
        for (k, n) in [2, 4].enumerated() {
            for (i, (a, b)) in zip(runs[0], runs[k + 1]).enumerated() {
                for key in Self.rolloutKeys + expertKeys {
                    // Present, so that the comparison is not nil against nil.
                    XCTAssertNotNil(a[key], "\(objective) step \(i + 1): no \(key) at -n 1")
                    XCTAssertEqual(a[key], b[key], "\(objective) step \(i + 1) \(key), -n 1 vs -n \(n)")
                }
                if objective == "chord" { XCTAssertEqual(a["mu"] ?? .nan, b["mu"] ?? .nan, accuracy: 1e-7, "step \(i + 1) mu") }
                // SRFT's weights come from the training forward's entropy: float32 noise of the batch layout, as the loss.
                for key in objective == "srft" ? ["w_sft", "w_rl"] : [] {
                    XCTAssertEqual(a[key] ?? .nan, b[key] ?? -1, accuracy: 1e-5 * abs(a[key] ?? 1), "srft step \(i + 1) \(key), -n 1 vs -n \(n)")
                }
                let la = a["loss"] ?? .nan, lb = b["loss"] ?? .nan
                // The loss is a mean of O(1) terms −A·ratio whose advantages sum to 0 per group, so
                // it is near 0 and its float32 noise (the sampler's log-probs differ by ~1e-7 between
                // decode batch layouts) is absolute, not relative.
                XCTAssertEqual(la, lb, accuracy: 1e-6 + 1e-5 * abs(la), "\(objective) step \(i + 1) loss, -n 1 vs -n \(n)")
                let ga = a["grad_norm"] ?? .nan, gb = b["grad_norm"] ?? .nan
                XCTAssertEqual(ga, gb, accuracy: 1e-4 * max(ga, 1e-3), "\(objective) step \(i + 1) grad_norm, -n 1 vs -n \(n)")
            }
        }
    }

    /// At rollout_temperature 0.6 the sampler's log-probs and the trainer's are both at 0.6 (TRL
    /// divides the logits by its temperature): at the first use of each generation (steps 1 and
    /// 3) the ratio is 1 up to the decode-vs-forward float difference (with the sampler at 1 and
    /// the trainer at 0.6 it was not); the steps are the same at -n 1 and -n 2, and a run resumed
    /// at -n 2 from its step-2 checkpoint goes on with the same losses.
    func testAtARolloutTemperatureTheRatioStartsAtOneAcrossRanksAndResume() throws {
        let args = Self.grpo(["--rollout-temperature", "0.6"])
        let outs = [1, 2].map { CLI.tempDir("grpo-tau-n\($0)") }
        let runs = zip([1, 2], outs).map { n, out -> [[String: Double]] in
            let r = CLI.mpirun(n, args + ["--out", out, "--save-every", "2"], seconds: 180)
            XCTAssertEqual(r.status, 0, "-n \(n): \(r.all)")
            return CLI.trainingRows(out)
        }
        XCTAssertEqual(runs.map(\.count), [4, 4])
        guard runs.allSatisfy({ $0.count == 4 }) else { return }
        for step in [0, 2] {
            XCTAssertEqual(runs[0][step]["ratio"] ?? .nan, 1, accuracy: 1e-5, "step \(step + 1): the first use of its generation")
        }
        XCTAssertTrue(runs[0].contains { ($0["grad_norm"] ?? 0) > 1e-4 }, "no gradient in any step")
        for (i, (a, b)) in zip(runs[0], runs[1]).enumerated() {
            for key in ["loss", "ratio", "entropy", "grad_norm"] {
                let x = a[key] ?? .nan, y = b[key] ?? .nan
                XCTAssertEqual(x, y, accuracy: 1e-6 + 1e-4 * abs(x), "step \(i + 1) \(key), -n 1 vs -n 2")
            }
        }
        let resumed = CLI.tempDir("grpo-tau-resumed")
        let r = CLI.mpirun(2, args + ["--out", resumed, "--resume", outs[0] + "/checkpoints/step-000002"], seconds: 180)
        XCTAssertEqual(r.status, 0, r.all)
        let after = CLI.trainingRows(resumed).suffix(2).map { $0["loss"] ?? .nan }
        XCTAssertEqual(after.count, 2)
        for (x, y) in zip(after, runs[0].suffix(2).map { $0["loss"] ?? .nan }) {
            XCTAssertEqual(x, y, accuracy: 1e-6 + 1e-4 * abs(y), "steps 3-4 after resuming at step 2 (at -n 2)")
        }
    }

    /// A rollout stops at every eos id of the model, as TRL's GRPOTrainer (its `eos_token_ids`:
    /// the tokenizer's and generation_config.json's), not only at the data's end token: with
    /// the greedy answer's first token made an eos id, each rollout is that token alone.
    func testRolloutsStopAtTheModelsEveryEosId() throws {
        let dir = CLI.tempDir("grpo-eos")
        let base = CLI.sftDist(["train", "--model", "tiny", "--steps", "30", "--lr", "1e-2", "--eval-examples", "0", "--eval-every", "0",
                                "--quiet", "--out", "base"], cwd: dir)
        XCTAssertEqual(base.status, 0, base.all)
        try #"{"prompt": "sort 523 =", "completion": " 235"}"#.write(toFile: dir + "/p.jsonl", atomically: true, encoding: .utf8)
        let greedy = CLI.sftDist(["generate", "--model", "base/model", "--prompt", "sort 523 =", "--max-new-tokens", "6", "--json"], cwd: dir)
        let first = ((try? JSONSerialization.jsonObject(with: Data(greedy.stdout.utf8))) as? [String: Any])?["ids"] as? [Int]
        XCTAssertNotNil(first?.first, greedy.all)
        let args = ["train", "--model", "base/model", "--objective", "grpo", "--data", "p.jsonl", "--reward", "numeric", "--rollout-top-k", "1",
                    "--rollouts", "2", "--batch-size", "2", "--steps", "1", "--max-completion-length", "6", "--eval-examples", "0",
                    "--eval-every", "0", "--quiet"]
        func lengths(_ out: String) -> (Double, Double) {
            XCTAssertEqual(CLI.sftDist(args + ["--out", out], cwd: dir).status, 0)
            let row = CLI.trainingRows(dir + "/" + out).first ?? [:]
            return (row["completions/mean_length"] ?? .nan, row["completions/clipped_ratio"] ?? .nan)
        }
        let plain = lengths("plain")
        XCTAssertGreaterThan(plain.0, 1, "the greedy answer and its end token")
        try "{\"eos_token_id\": \(first?.first ?? 0)}".write(toFile: dir + "/base/model/generation_config.json", atomically: true, encoding: .utf8)
        let stopped = lengths("eos")
        XCTAssertEqual(stopped.0, 1, "the first token ends each rollout")
        XCTAssertEqual(stopped.1, 0, "and counts as stopped, not clipped")
    }

    /// kill -9 after step 3 (a checkpoint after every step; step 3 is the first step of the
    /// second generation, so step 4 must train on rollouts stored in the checkpoint), then
    /// `--resume latest`: the same losses, rewards and rollouts as the uninterrupted run.
    func testKillAndResumeLatestContinuesTheSameRollouts() throws {
        try assertKillAndResumeLatest(objective: "grpo")
    }

    /// `--rollout-top-k 1` samples only the most likely token, so at temperature 1 the G rollouts
    /// of a prompt are one sequence: every group's rewards are equal, its advantages 0, and the
    /// step has no gradient. Without it the same steps' groups disagree.
    func testRolloutTopKOneMakesEveryGroupOneSequence() throws {
        var rows: [[[String: Double]]] = []
        for extra in [[], ["--rollout-top-k", "1"]] {
            let out = CLI.tempDir("grpo-top-k")
            let r = CLI.sftDist(Self.grpo(extra + ["--steps", "2", "--out", out]))
            XCTAssertEqual(r.status, 0, r.all)
            rows.append(CLI.trainingRows(out))
        }
        XCTAssertEqual(rows.map(\.count), [2, 2])
        XCTAssertTrue(rows[0].contains { ($0["frac_reward_zero_std"] ?? 1) < 1 }, "\(rows[0])")
        for row in rows[1] {
            XCTAssertEqual(row["frac_reward_zero_std"], 1, "\(row)")
            XCTAssertEqual(row["grad_norm"], 0, "\(row)")
        }
    }

    /// CHORD's demonstrations come from their own stream beside the rollouts and its μ from a
    /// schedule: both continue as if never interrupted.
    func testCHORDKillAndResumeLatest() throws {
        try assertKillAndResumeLatest(objective: "chord", extraKeys: ["mu", "expert_sequences"], command: {
            Self.grpo($0 + ["--objective-arg", "mu_decay=4", "--objective-arg", "mu_peak=0.5", "--objective-arg", "mu_valley=0.05"],
                      objective: "chord")
        })
    }

    /// Fails for each of `keys` that no row of `rows` has: compared as optionals, a metric no
    /// run logs would pass as nil against nil. (Some are logged only at some steps: ReLIFT's
    /// SFT steps have no rollout metrics.)
    static func assertLogged(_ keys: [String], in rows: [[String: Double]], _ label: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        for key in keys where !rows.contains(where: { $0[key] != nil }) {
            XCTFail("\(label): no step logged \(key)", file: file, line: line)
        }
    }

    /// `command` builds the run's arguments (default: `grpo`'s); `lastKept` picks, from the
    /// uninterrupted run's rows, the last step whose checkpoint the killed run keeps (default 3);
    /// `rolloutKeys` the rollout metrics the run logs (all of them when it generates).
    func assertKillAndResumeLatest(objective: String, extraKeys: [String] = [], rolloutKeys: [String] = GRPOCLITests.rolloutKeys,
                                   command: (([String]) -> [String])? = nil,
                                   lastKept: ([[String: Double]]) -> Int? = { _ in 3 }) throws {
        let command = command ?? { Self.grpo($0, objective: objective) }
        let straight = CLI.tempDir("\(objective)-straight"), out = CLI.tempDir("\(objective)-killed")
        XCTAssertEqual(CLI.mpirun(2, command(["--out", straight]), seconds: 240).status, 0)
        let a = CLI.trainingRows(straight)
        guard let kept = lastKept(a) else { return XCTFail("\(objective): no step to resume after in \(a)") }
        XCTAssertGreaterThan(a.count, kept, "the resumed run must have steps left to train")
        let args = command(["--out", out, "--save-every", "1"])
        let job = try BackgroundJob.mpirun(2, args, environment: ["SFT_DIST_FAULT": "after-step:\(kept + 1)"])
        let (killed, _) = job.wait()
        XCTAssertNotEqual(killed.status, 0, "the fault point must kill the run: \(killed.all)")
        XCTAssertEqual(CLI.checkpoints(out).published.last, String(format: "step-%06d", kept))
        let resumed = CLI.mpirun(2, args + ["--resume", "latest"], seconds: 240)
        XCTAssertEqual(resumed.status, 0, resumed.all)
        let b = CLI.trainingRows(out)
        XCTAssertEqual(b.count, a.count)
        Self.assertLogged(["loss", "grad_norm"] + extraKeys + rolloutKeys, in: a, "\(objective), uninterrupted")
        for (i, (x, y)) in zip(a, b).enumerated() {
            for key in ["loss", "grad_norm"] + extraKeys + rolloutKeys {
                XCTAssertEqual(x[key], y[key], "\(objective) step \(i + 1) \(key)")
            }
        }
    }

    /// Resumed between two generations with another micro-batch size: the next
    /// generation samples the same rollouts (rewards and lengths exactly), and the losses agree
    /// up to float summation order.
    func testResumeWithAnotherMicroBatchSizeKeepsTheRollouts() throws {
        let straight = CLI.tempDir("grpo-micro-straight"), out = CLI.tempDir("grpo-micro")
        XCTAssertEqual(CLI.mpirun(2, Self.grpo(["--out", straight]), seconds: 240).status, 0)
        XCTAssertEqual(CLI.mpirun(2, Self.grpo(["--out", out, "--save-every", "1", "--keep-last", "0"]), seconds: 240).status, 0)
        var args = Self.grpo(["--out", out, "--resume", out + "/checkpoints/step-000002"])
        args[try XCTUnwrap(args.firstIndex(of: "--micro-batch-size")) + 1] = "5"
        let resumed = CLI.mpirun(2, args, seconds: 240)
        XCTAssertEqual(resumed.status, 0, resumed.all)
        let a = CLI.trainingRows(straight), b = CLI.trainingRows(out)
        XCTAssertEqual(a.count, 4)
        XCTAssertEqual(b.count, 4)
        for (i, (x, y)) in zip(a, b).enumerated() {
            for key in Self.rolloutKeys { XCTAssertEqual(x[key], y[key], "step \(i + 1) \(key)") }
            let l = try XCTUnwrap(x["loss"]), m = try XCTUnwrap(y["loss"])
            XCTAssertLessThanOrEqual(abs(l - m), 1e-6 + 1e-5 * abs(l), "step \(i + 1) loss")
        }
    }

    func testBadInputIsOneLineAtStartUp() throws {
        let dir = CLI.tempDir("grpo-bad")
        let prompts = dir + "/prompts.jsonl"
        try "{\"prompt\": \"add 1 2 =\", \"completion\": \" 3\"}\n{\"prompt\": \"add 2 2 =\"}\n".write(toFile: prompts, atomically: true, encoding: .utf8)
        let base = ["train", "--model", "tiny", "--objective", "grpo", "--rollouts", "2", "--batch-size", "4", "--steps", "1",
                    "--eval-examples", "0", "--eval-every", "0", "--quiet", "--out", dir + "/out"]
        func refused(_ args: [String], _ message: String, line: UInt = #line) {
            let r = CLI.sftDist(base + args)
            XCTAssertEqual(r.status, 1, r.all, line: line)
            XCTAssertTrue(r.stderr.contains(message), "expected \(message) in:\n\(r.stderr)", line: line)
            XCTAssertEqual(r.stderr.split(separator: "\n").filter { $0.contains("error") }.count, 1, r.stderr, line: line)
        }
        refused([], "objective grpo samples rollouts and needs a reward")
        refused(["--reward", "exact", "--prompts", prompts], "prompts.jsonl:2: reward exact needs a reference answer")
        refused(["--reward", "task", "--rollouts", "3"], "batch_size (4) must be a multiple of rollouts (3)")
        refused(["--reward", "task", "--rollouts", "3", "--dry-run"], "batch_size (4) must be a multiple of rollouts (3)")
        refused(["--reward", "task", "--max-completion-length", "64"], "max_completion_length (64) leaves no room for a prompt")
        refused(["--reward", "task", "--max-completion-length", "60", "--truncation", "drop"], "every prompt is longer than 4 tokens")
        // Cut prompts that the task reward cannot read: at start-up, not at step 1's scoring.
        refused(["--reward", "task", "--max-completion-length", "60"], "are cut to 4 (the context minus max_completion_length), and reward task cannot read a cut task prompt")
        // --max-length above the model's context: raising it changes nothing (it was advised).
        refused(["--reward", "task", "--max-completion-length", "60", "--max-length", "1000"],
                "cannot read a cut task prompt; lower --max-completion-length (the model's context is the limit) or give --truncation drop")
        refused(["--reward", "bogus"], "--reward must be reward functions")
        // Found by a hostile review: each failed at step 1 (or trapped), after the output was made.
        let messages = dir + "/messages.jsonl"
        try "{\"messages\": [{\"role\": \"user\", \"content\": \"add 1 2 =\"}]}\n".write(toFile: messages, atomically: true, encoding: .utf8)
        refused(["--reward", "task", "--prompts", messages], "messages.jsonl:1: reward task reads a built-in task prompt (make-data) at the end of what the model sees")
        // The way out it names works ({prompt} rows; it said "with --chat-template plain", which is refused for them).
        refused(["--reward", "task", "--prompts", messages], "give {prompt} rows, which no template wraps, or another reward")
        // A {prompt} row of another task is not said to be wrapped by a template.
        let plain = dir + "/plain.jsonl"
        try "{\"prompt\": \"hello there\"}\n".write(toFile: plain, atomically: true, encoding: .utf8)
        refused(["--reward", "task", "--prompts", plain], "plain.jsonl:1: reward task reads a built-in task prompt (make-data) at the end of what the model sees, and this prompt ends with hello there (not a built-in task's prompt: give make-data's tasks, or another reward)")
        refused(["--reward", "task=0"], "every reward weight is 0 (task=0)")
        refused(["--reward", "task", "--self-train", "rft", "--self-train-scorer", "task"], "--self-train rft makes each step's batch from the model's own answers, but objective grpo trains on rollouts")
        refused(["--reward", "task", "--steps-per-generation", "4096"], "--steps-per-generation 4096 is more than steps (1)")
        // The logits are divided by it: 1e-40 (subnormal) and 1e-50 (0 as a float) ended in a non-finite loss at step 1.
        for t in ["1e-40", "1e-50"] { refused(["--reward", "task", "--rollout-temperature", t], "a number in [1e-06, 1000]") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out"), "a refused run made its output directory")
        refused(["--reward", "regex", "--reward", "exact", "--reward-arg", "pattern=x"], "--reward-arg pattern: name the reward function it is for")
        refused(["--reward", "command", "--reward-arg", "cmd=while read l; do echo nan; done"], "of its output is \"nan\", not a finite number")
        // A name that is not among the functions (it said "name the reward function it is for", which it did).
        refused(["--reward", "task", "--reward-arg", "regex.pattern=x"], "--reward-arg regex.pattern: regex is not one of the reward functions (task): add --reward regex, or drop the argument")
        // A weight in hexadecimal, as every number flag refuses it (0x10 weighed 16).
        refused(["--reward", "format=0x10"], "--reward must be reward functions")
        // A directory that is not a reward model's, and one that does not exist: said which.
        refused(["--reward", dir], "--reward: \(dir) holds no config.json: not a model's directory")
        refused(["--reward", GRPOCLITests.warm + "=2"], "--reward: \(GRPOCLITests.warm) is a language model's directory, not a reward model's")
        refused(["--reward", dir + "/none"], "--reward: \(dir)/none does not exist (give a reward model's directory, or a function: one of ")
        refused(["--reward", "task=abc"], "--reward must be reward functions")
        // train's own spelling of the scorer's settings, not eval's flags (train has no --scorer-cmd).
        refused(["--reward", "command"], "--reward-arg command.cmd=\"program args\" (train)")
        refused(["--reward", "command", "--reward-arg", "cmd=cat", "--reward-arg", "timeout=0"], "--reward-arg command.timeout= in train")
    }

    /// A generation (or CHORD's demonstrations) too large for the memory is refused at start-up
    /// as out of memory (exit 5, one line, nothing written): expert_share=0.9999999 asked for
    /// 1.3·10⁸ demonstrations a step and filled 20 GB in 30 s; under `ulimit -v` a failed 14 GB
    /// allocation trapped. `ulimit -v` bounds the memory the check sees.
    func testAGenerationLargerThanTheMemoryIsRefusedAtStartUp() {
        let dir = CLI.tempDir("grpo-memory")
        for (extra, message) in [
            (["--objective", "chord", "--objective-arg", "expert_share=0.9999999", "--batch-size", "16"],
             "and 134217712 demonstrations a step (expert_share) needs about"),
            (["--objective", "grpo", "--batch-size", "1048576", "--steps-per-generation", "64", "--steps", "64"],
             "a generation of 67108864 rollouts (batch_size 1048576 × steps_per_generation 64"),
        ] {
            let out = dir + "/run-\(extra[1])"
            let argv = [CLI.binary, "train", "--model", "tiny", "--reward", "task", "--rollouts", "4", "--micro-batch-size", "4",
                        "--steps", "3", "--eval-examples", "0", "--out", out] + extra
            let r = CLI.run(["bash", "-c", "ulimit -v 6000000; exec \"$@\"", "bash"] + argv, seconds: 120)
            XCTAssertEqual(r.status, 5, r.all)
            XCTAssertEqual(CLI.occurrences(of: "sft-dist: error: out of memory: ", in: r.stderr), 1, r.all)
            XCTAssertTrue(r.stderr.contains(message), r.all)
            XCTAssertFalse(r.stderr.contains("Fatal error"), r.all)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "nothing written: \(r.all)")
        }
    }
}
