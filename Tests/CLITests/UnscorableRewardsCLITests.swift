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
        // An evaluation's scorer judges every answer.
        let e = CLI.mpirun(2, ["eval", "--model", GRPOCLITests.warm, "--data", GRPOCLITests.warm + "/../data/heldout.jsonl",
                               "--examples", "4", "--scorer", "command",
                               "--scorer-cmd", "while read -r l; do echo None; done"], seconds: 60)
        XCTAssertEqual(e.status, 1, e.all)
        XCTAssertEqual(CLI.occurrences(of: "line 1 of its output is None (no score)", in: e.all), 1, e.all)
    }
}
