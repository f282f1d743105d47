import Foundation
import XCTest

/// A `--reward command` that answers `null` for some rollouts (TRL's reward function returning
/// None): under grpo and rloo those rollouts train with advantage 0 and are left out of the
/// reward figures, the same at -n 1 and -n 2, said once in the log; a resume inside the
/// generation is bit-exact; online-dpo, which ranks every rollout, refuses one in one line; an
/// evaluation's scorer must score every answer.
final class UnscorableRewardsCLITests: XCTestCase {
    /// No reward for an answer starting with 1 or holding a k; else 1 for one holding 0, 2, 4 or
    /// a vowel, 0 otherwise: on the warm model every step has groups with signal and nulls. Its
    /// answers go to `log` (a path without spaces), one per line.
    static func scorer(log: String) -> String {
        #"while IFS= read -r l; do c=${l#*\"completion\":\"}; c=${c%%\",\"prompt\"*}; case "$c" in " 1"*|*k*) s=null;; *[0248aeiou]*) s=1;; *) s=0;; esac; echo "$s" >> "# + log + #"; echo "$s"; done"#
    }

    static func args(_ objective: String, log: String) -> [String] {
        ["train", "--model", GRPOCLITests.warm, "--objective", objective, "--reward", "command", "--reward-arg", "cmd=" + scorer(log: log),
         "--rollouts", "4", "--batch-size", "16", "--micro-batch-size", "3", "--steps", "4", "--steps-per-generation", "2",
         "--max-completion-length", "6", "--lr", "3e-3", "--warmup-steps", "0", "--eval-examples", "0", "--eval-every", "0", "--quiet"]
    }

    func testNullRolloutsTrainWithNoAdvantageTheSameAtAnyRankCount() throws {
        for objective in ["grpo", "rloo"] {
            var runs: [[[String: Double]]] = []
            for n in [1, 2] {
                let dir = CLI.tempDir("unscorable-\(objective)-\(n)")
                let log = dir + "/scores.txt"
                let r = CLI.mpirun(n, Self.args(objective, log: log) + ["--out", dir + "/out"], seconds: 240)
                XCTAssertEqual(r.status, 0, r.all)
                let scores = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
                // The first generation: 32 rollouts (2 steps of 16), scored once, by the coordinator.
                XCTAssertEqual(scores.count, 64, "\(objective) -n \(n): two generations of 32")
                let nulls = scores.prefix(32).filter { $0 == "null" }.count
                XCTAssertGreaterThan(nulls, 0, "the warm model never answered with a 1: nothing is tested")
                XCTAssertEqual(CLI.occurrences(of: "every reward function gave null", in: r.all), 1, r.all)
                XCTAssertTrue(r.all.contains("for \(nulls) of 32 rollouts (first: builtin:tasks:"), r.all)
                let rows = CLI.trainingRows(dir + "/out")
                XCTAssertEqual(rows.count, 4)
                // Step k trains the k-th 16 rollouts scored (two generations of two steps): its
                // reward is their mean over the scored ones, not over 16.
                for (k, row) in rows.enumerated() where scores.count == 64 {
                    let scored = scores[(16 * k)..<(16 * k + 16)].compactMap { Double($0) }
                    let want = scored.isEmpty ? Double.nan : scored.reduce(0, +) / Double(scored.count)
                    XCTAssertEqual(row["reward"] ?? .nan, want, accuracy: 1e-12, "\(objective) -n \(n) step \(k + 1)")
                    XCTAssertEqual(row["rewards/command/mean"] ?? .nan, want, accuracy: 1e-12)
                }
                XCTAssertTrue(rows.allSatisfy { abs($0["loss"] ?? 0) > 0 }, "\(objective): a step without signal: \(rows)")
                runs.append(rows)
            }
            guard runs.allSatisfy({ $0.count == 4 }) else { continue }
            for (i, (a, b)) in zip(runs[0], runs[1]).enumerated() {
                for key in ["reward", "reward_std", "rewards/command/mean", "rewards/command/std", "accuracy", "frac_reward_zero_std"] {
                    XCTAssertEqual(a[key], b[key], "\(objective) step \(i + 1) \(key), -n 1 vs -n 2")
                }
                XCTAssertEqual(a["loss"] ?? .nan, b["loss"] ?? .nan, accuracy: 1e-6 + 1e-5 * abs(a["loss"] ?? 0), "\(objective) step \(i + 1) loss")
            }
        }
    }

    /// Step 2 trains on the checkpointed generation's second half, nulls (NaN rewards) included.
    func testAResumeInsideTheGenerationIsBitExact() {
        let dir = CLI.tempDir("unscorable-resume")
        let args = Self.args("grpo", log: dir + "/scores.txt")
        XCTAssertEqual(CLI.sftDist(args + ["--save-every", "1", "--keep-last", "0", "--out", dir + "/a"]).status, 0)
        let r = CLI.sftDist(args + ["--out", dir + "/b", "--resume", dir + "/a/checkpoints/step-000001"])
        XCTAssertEqual(r.status, 0, r.all)
        let losses = CLI.losses(dir + "/a")
        XCTAssertEqual(losses.count, 4)
        XCTAssertEqual(CLI.losses(dir + "/b").map(\.bitPattern), losses.map(\.bitPattern))
    }

    func testMethodsThatNeedEveryRewardRefuseANull() throws {
        let dir = CLI.tempDir("unscorable-refused")
        let online = ["train", "--model", GRPOCLITests.warm, "--objective", "online-dpo", "--reward", "command",
                      "--reward-arg", "cmd=while read -r l; do echo null; done", "--batch-size", "8", "--steps", "2",
                      "--max-completion-length", "6", "--eval-examples", "0", "--eval-every", "0", "--quiet", "--out", dir + "/o"]
        let r = CLI.mpirun(2, online, seconds: 120)
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertEqual(CLI.occurrences(of: "every reward function gave null (no reward) for a rollout of this prompt; online-dpo needs a reward for each rollout", in: r.all), 1, r.all)
        // srft and relift read the first function alone: right answers from wrong ones, the buffer.
        for objective in ["srft", "relift"] {
            let o = ["train", "--model", GRPOCLITests.warm, "--objective", objective, "--reward", "command", "--reward", "format",
                     "--reward-arg", "command.cmd=while read -r l; do echo null; done", "--rollouts", "4", "--batch-size", "8", "--steps", "1",
                     "--max-completion-length", "6", "--eval-examples", "0", "--eval-every", "0", "--quiet", "--out", dir + "/" + objective]
            let s = CLI.mpirun(2, o, seconds: 120)
            XCTAssertEqual(s.status, 1, s.all)
            XCTAssertEqual(CLI.occurrences(of: "reward command gave null (no reward) for a rollout of this prompt; \(objective) reads the first reward function", in: s.all), 1, s.all)
        }
        // online-dpo ranks by Σ w·r over the functions that scored (TRL's nansum): a null of one
        // of two functions made every score NaN.
        let both = ["train", "--model", GRPOCLITests.warm, "--objective", "online-dpo", "--reward", "command", "--reward", "format",
                    "--reward-arg", "command.cmd=while read -r l; do echo null; done", "--batch-size", "8", "--steps", "2",
                    "--max-completion-length", "6", "--eval-examples", "0", "--eval-every", "0", "--quiet", "--out", dir + "/both"]
        let b = CLI.mpirun(2, both, seconds: 120)
        XCTAssertEqual(b.status, 0, b.all)
        for row in CLI.trainingRows(dir + "/both") {
            XCTAssertTrue(row["objective/scores"].map(\.isFinite) ?? false, "\(row)")
            XCTAssertNil(row["rewards/command/mean"], "no rollout scored by command: null in metrics.jsonl")
            XCTAssertNotNil(row["rewards/format/mean"])
        }
        // An evaluation's scorer judges every answer.
        let e = CLI.mpirun(2, ["eval", "--model", GRPOCLITests.warm, "--data", GRPOCLITests.warm + "/../data/heldout.jsonl",
                               "--examples", "4", "--scorer", "command",
                               "--scorer-cmd", "while read -r l; do echo None; done"], seconds: 60)
        XCTAssertEqual(e.status, 1, e.all)
        XCTAssertEqual(CLI.occurrences(of: "line 1 of its output is None (no score)", in: e.all), 1, e.all)
    }

    /// TRL hands a reward function the dataset's other columns; the command scorer gets them as
    /// `"columns"`: here a `task` column says which rows it scores (TRL's None for the others),
    /// and a `solution` column reaches it as written.
    func testTheRowsOtherColumnsReachTheScorer() throws {
        let dir = CLI.tempDir("unscorable-columns")
        let prompts = dir + "/prompts.jsonl"
        let rows = (0..<8).map { i in
            #"{"prompt": "add \#(i) \#(i + 2) =", "completion": " \#(2 * i + 2)", "task": "\#(i % 2 == 0 ? "add" : "skip")", "solution": {"value": \#(2 * i + 2)}}"#
        }
        try (rows.joined(separator: "\n") + "\n").write(toFile: prompts, atomically: true, encoding: .utf8)
        let log = dir + "/seen.jsonl"
        let cmd = #"while IFS= read -r l; do printf '%s\n' "$l" >> "# + log + #"; case "$l" in *'"task":"skip"'*) echo null;; *'"completion":" 1'*) echo 1;; *) echo 0;; esac; done"#
        let r = CLI.mpirun(2, ["train", "--model", GRPOCLITests.warm, "--objective", "grpo", "--prompts", prompts, "--reward", "command",
                               "--reward-arg", "cmd=" + cmd, "--rollouts", "4", "--batch-size", "16", "--micro-batch-size", "4", "--steps", "1",
                               "--max-completion-length", "6", "--eval-examples", "0", "--eval-every", "0", "--quiet", "--out", dir + "/o"], seconds: 240)
        XCTAssertEqual(r.status, 0, r.all)
        let seen = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        XCTAssertEqual(seen.count, 16)
        for line in seen {
            let prompt = try XCTUnwrap(line["prompt"] as? String), columns = try XCTUnwrap(line["columns"] as? [String: Any], "\(line)")
            let i = try XCTUnwrap(Int(prompt.split(separator: " ")[1]))
            XCTAssertEqual(columns["task"] as? String, i % 2 == 0 ? "add" : "skip", prompt)
            XCTAssertEqual((columns["solution"] as? [String: Any])?["value"] as? Int, 2 * i + 2, prompt)
            XCTAssertEqual(Set(columns.keys), ["task", "solution"], "the prompt and completion are not columns")
        }
        let skipped = seen.filter { ($0["columns"] as? [String: Any])?["task"] as? String == "skip" }.count
        XCTAssertGreaterThan(skipped, 0)
        XCTAssertTrue(r.all.contains("every reward function gave null (no reward) for \(skipped) of 16 rollouts"), r.all)
        // An evaluation's scorer sees them too.
        let e = CLI.sftDist(["eval", "--model", GRPOCLITests.warm, "--data", prompts, "--examples", "4", "--scorer", "command",
                             "--scorer-cmd", #"while IFS= read -r l; do case "$l" in *'"columns":{'*'"task":"'*) echo 1;; *) echo 0;; esac; done"#])
        XCTAssertEqual(e.status, 0, e.all)
        XCTAssertTrue(e.stdout.contains("mean reward       1.0000"), "every answer's line held its row's task column: \(e.all)")
    }
}
