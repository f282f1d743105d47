import Foundation
import XCTest

/// `--objective reward` end to end (TRL's RewardTrainer): a reward model trained on preference
/// pairs gives the same losses and figures under real `mpirun -n 1/2/4`, resumes bit-exactly,
/// is saved as transformers' `GPT2ForSequenceClassification`, and `score` reads its rewards; the
/// keys a reward model cannot serve, and a reward model where a causal LM is needed, are refused
/// with one line.
final class RewardCLITests: XCTestCase {
    static func args(_ data: String) -> [String] {
        ["train", "--model", "tiny", "--data", data, "--objective", "reward", "--batch-size", "7", "--micro-batch-size", "3",
         "--steps", "4", "--lr", "1e-2", "--warmup-steps", "0", "--eval-every", "2", "--quiet", "--checksum-every", "2"]
    }

    /// DPOCLITests' pairs, every third with a margin of 0.5 or 1 (TRL's optional column).
    static func writePairsWithMargins(_ dir: String) -> String {
        let path = DPOCLITests.writePairs(dir)
        let lines = (try! String(contentsOfFile: path, encoding: .utf8)).split(separator: "\n").enumerated().map { i, line in
            i % 3 == 0 ? String(line.dropLast()) + #", "margin": \#(Double(i % 2 + 1) / 2)}"# : String(line)
        }
        try! lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testRewardIsRankCountInvariantUnderMpirun() throws {
        let data = Self.writePairsWithMargins(CLI.tempDir("reward-data"))
        // lr 1e-3: at 1e-2 Adam's steps on these margins grew the ranks' float summation-order
        // differences from 5e-8 at step 1 to 1.6e-5 of grad_norm at step 4; at 1e-3 ≤ 1e-6 throughout.
        let runs = CLI.trainingRows(atRanks: [1, 2, 4], Self.args(data).map { $0 == "1e-2" ? "1e-3" : $0 }
                                        + ["--objective-arg", "center_rewards_coefficient=0.01"],
                                    label: "reward", seconds: 120)
        XCTAssertEqual(runs.map(\.count), [4, 4, 4])
        // The margins reach the loss (a pair's margin travels beside its sequences, `StepBatch`'s wire).
        let plain = CLI.trainingRows(atRanks: [1], Self.args(DPOCLITests.writePairs(CLI.tempDir("reward-data-plain"))).map { $0 == "1e-2" ? "1e-3" : $0 }
                                        + ["--objective-arg", "center_rewards_coefficient=0.01"], label: "reward-plain")
        XCTAssertNotEqual(plain[0].first?["loss"] ?? .nan, runs[0].first?["loss"] ?? .nan, accuracy: 1e-3)
        XCTAssertNotEqual(runs[0].first?["loss"] ?? .nan, runs[0].last?["loss"] ?? .nan, "the loss never moves")
        for n in 1...2 {
            for (i, (a, b)) in zip(runs[0], runs[n]).enumerated() {
                for key in ["loss", "accuracy", "margin", "mean_reward", "grad_norm"] {
                    let x = a[key] ?? .nan, y = b[key] ?? .nan
                    XCTAssertEqual(x, y, accuracy: 1e-5 * max(abs(x), 1), "step \(i + 1) \(key): -n 1 \(x) vs -n \([1, 2, 4][n]) \(y)")
                }
            }
        }
    }

    func testRewardResumesExactlyAndSavesARewardModel() throws {
        let dir = CLI.tempDir("reward-resume")
        let data = DPOCLITests.writePairs(dir)
        CLI.assertResumesBitExact(Self.args(data), every: 2, label: "reward-resumed")
        let out = dir + "/run"
        let r = CLI.sftDist(Self.args(data) + ["--out", out])
        XCTAssertEqual(r.status, 0, r.all)
        // num_tokens counts each answer's tokens as TRL's attention mask does: not the trailing pad.
        let first = CLI.trainingRows(out).first
        XCTAssertEqual(first?["num_tokens"], first?["tokens"])
        let evals = CLI.evalRows(out)
        XCTAssertFalse(evals.isEmpty)
        for key in ["eval_loss", "eval_accuracy", "eval_margin", "eval_mean_reward"] { XCTAssertNotNil(evals.last?[key], key) }
        XCTAssertNil(evals.last?["eval_generated"], "a reward model generates nothing")
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/model/config.json"))) as! [String: Any]
        XCTAssertEqual(config["architectures"] as? [String], ["GPT2ForSequenceClassification"])
        XCTAssertEqual(config["pad_token_id"] as? Int, 259)
        // Over-long pairs were dropped, and recipe.yaml says so: a run from it drops them too.
        XCTAssertTrue(try String(contentsOfFile: out + "/recipe.yaml", encoding: .utf8).contains("truncation: drop"))

        // score: one reward per row, the same at -n 2.
        let rows = dir + "/rows.jsonl"
        try (0..<6).map { i in #"{"prompt": "\#(i)+\#(i)=", "completion": "\#(i + i)"}"# }.joined(separator: "\n")
            .write(toFile: rows, atomically: true, encoding: .utf8)
        let one = CLI.sftDist(["score", "--model", out + "/model", "--data", rows])
        XCTAssertEqual(one.status, 0, one.all)
        let two = CLI.mpirun(2, ["score", "--model", out + "/model", "--data", rows])
        XCTAssertEqual(two.status, 0, two.all)
        XCTAssertEqual(one.stdout, two.stdout)
        let rewards = one.stdout.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["reward"] as? Double
        }
        XCTAssertEqual(rewards.count, 6, one.stdout)
        XCTAssertTrue(rewards.allSatisfy(\.isFinite))

        // export and merge take a reward model as it is: the same rewards from the exported copy.
        let exported = CLI.sftDist(["export", "--model", out + "/model", "--out", dir + "/exported"])
        XCTAssertEqual(exported.status, 0, exported.all)
        XCTAssertEqual(CLI.sftDist(["score", "--model", dir + "/exported", "--data", rows]).stdout, one.stdout)
        let merged = CLI.sftDist(["merge", out + "/model", dir + "/exported", "--out", dir + "/merged"])
        XCTAssertEqual(merged.status, 0, merged.all)
        XCTAssertEqual(CLI.sftDist(["score", "--model", dir + "/merged", "--data", rows]).stdout, one.stdout, "the average of a model with itself")

        // Where a causal LM is needed, the reward model is refused with one line.
        for command in [["generate", "--model", out + "/model", "--prompt", "1+1="], ["eval", "--model", out + "/model", "--data", rows],
                        ["train", "--model", out + "/model", "--data", rows, "--steps", "1", "--out", dir + "/sft"]] {
            let refused = CLI.sftDist(command)
            XCTAssertNotEqual(refused.status, 0, refused.all)
            XCTAssertTrue(refused.stderr.contains("is a reward model (GPT2ForSequenceClassification)"), "\(command[0]): \(refused.stderr)")
            XCTAssertEqual(CLI.occurrences(of: "error:", in: refused.stderr), 1, refused.stderr)
        }
    }

    /// The trainer reads each answer's reward where `score` (checked against transformers) does:
    /// at the eos that ends it, which the trailing pad makes an input. After one step at lr 1e-12
    /// the held-out pairs' eval_mean_reward is the mean of `score`'s rewards of their answers.
    func testTheTrainerReadsRewardsWhereScoreDoes() throws {
        let dir = CLI.tempDir("reward-position")
        let data = DPOCLITests.writePairs(dir)
        let held = dir + "/held.jsonl"
        let pairs = (try String(contentsOfFile: data, encoding: .utf8)).split(separator: "\n").prefix(6)
        try pairs.joined(separator: "\n").write(toFile: held, atomically: true, encoding: .utf8)
        let out = dir + "/run"
        let r = CLI.sftDist(["train", "--model", "tiny", "--data", data, "--heldout", held, "--objective", "reward", "--steps", "1",
                             "--lr", "1e-12", "--warmup-steps", "0", "--eval-every", "0", "--quiet", "--out", out])
        XCTAssertEqual(r.status, 0, r.all)
        let trainer = CLI.evalRows(out).last?["eval_mean_reward"] ?? .nan
        var rows: [String] = []
        for line in pairs {
            let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: String]
            for answer in [o["chosen"]!, o["rejected"]!] {
                rows.append(String(data: try JSONSerialization.data(withJSONObject: ["prompt": o["prompt"]!, "completion": answer]), encoding: .utf8)!)
            }
        }
        try rows.joined(separator: "\n").write(toFile: dir + "/rows.jsonl", atomically: true, encoding: .utf8)
        let scored = CLI.sftDist(["score", "--model", out + "/model", "--data", dir + "/rows.jsonl"])
        XCTAssertEqual(scored.status, 0, scored.all)
        let rewards = scored.stdout.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["reward"] as? Double
        }
        XCTAssertEqual(rewards.count, 12)
        XCTAssertEqual(trainer, rewards.reduce(0, +) / 12, accuracy: 1e-5)
    }

    func testKeysARewardModelCannotServeAreRefused() throws {
        let dir = CLI.tempDir("reward-refusals")
        let data = DPOCLITests.writePairs(dir)
        let base = ["train", "--model", "tiny", "--data", data, "--objective", "reward", "--steps", "1", "--dry-run"]
        for (extra, needle) in [(["--eval-examples", "5"], "--eval-examples 5: objective reward trains a reward model"),
                                (["--max-new-tokens", "5"], "--max-new-tokens: objective reward trains a reward model"),
                                (["--objective-arg", "center_rewards_coefficient=-1"], "center_rewards_coefficient must be a finite number ≥ 0")] {
            let r = CLI.sftDist(base + extra)
            XCTAssertNotEqual(r.status, 0, r.all)
            XCTAssertTrue(r.stderr.contains(needle), "\(extra): \(r.stderr)")
            XCTAssertEqual(CLI.occurrences(of: "error:", in: r.stderr), 1, r.stderr)
        }
        // A margin that is not a number names its line.
        let bad = DPOCLITests.writePairs(dir, bad: [2: #"{"prompt": "1+1=", "chosen": "2", "rejected": "3", "margin": "big"}"#])
        let r = CLI.sftDist(["train", "--model", "tiny", "--data", bad, "--objective", "reward", "--steps", "1", "--out", dir + "/out"])
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertTrue(r.stderr.contains("\(bad):2: field \"margin\" must be a number within float32's range"), r.stderr)
    }

    /// A trained reward model as grpo's reward function (`--reward DIR`, TRL's reward_funcs with a
    /// model id): the same rewards, advantages and losses at -n 1 and -n 2, logged under the
    /// directory's name; a causal LM's directory is no reward function.
    func testARewardModelScoresRolloutsAtAnyRankCount() throws {
        let dir = CLI.tempDir("reward-rollouts")
        let data = DPOCLITests.writePairs(dir)
        let rm = dir + "/judge"
        XCTAssertEqual(CLI.sftDist(Self.args(data) + ["--out", rm]).status, 0)
        let grpo = ["train", "--model", "tiny", "--objective", "grpo", "--reward", rm + "/model=0.5", "--reward", "format=0.1",
                    "--steps", "3", "--batch-size", "8", "--rollouts", "4", "--max-completion-length", "6",
                    "--lr", "1e-2", "--eval-examples", "0", "--quiet"]
        let runs = CLI.trainingRows(atRanks: [1, 2], grpo, label: "reward-grpo", seconds: 120)
        XCTAssertEqual(runs.map(\.count), [3, 3])
        XCTAssertNotNil(runs[0].first?["rewards/model/mean"], "logged under the directory's name")
        XCTAssertNotEqual(runs[0].first?["rewards/model/std"] ?? 0, 0, "the reward model tells rollouts apart")
        for (i, (a, b)) in zip(runs[0], runs[1]).enumerated() {
            for key in ["rewards/model/mean", "rewards/model/std", "reward", "reward_std"] {
                XCTAssertNotNil(a[key], "step \(i + 1) \(key)")
                XCTAssertEqual(a[key], b[key], "step \(i + 1) \(key): the rewards are the same bits")
            }
            XCTAssertEqual(a["loss"] ?? .nan, b["loss"] ?? .nan, accuracy: 1e-6, "step \(i + 1) loss")
        }
        let lm = CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--out", dir + "/lm", "--quiet"])
        XCTAssertEqual(lm.status, 0, lm.all)
        let refused = CLI.sftDist(grpo.map { $0 == rm + "/model=0.5" ? dir + "/lm/model" : $0 } + ["--out", dir + "/no"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("--reward: \(dir)/lm/model is a language model's directory, not a reward model's"), refused.stderr)
        // A reward model with a weight that is not one: the weight is the problem, not the directory.
        let weight = CLI.sftDist(grpo.map { $0 == rm + "/model=0.5" ? rm + "/model=abc" : $0 } + ["--out", dir + "/no"])
        XCTAssertEqual(weight.status, 1, weight.all)
        XCTAssertTrue(weight.stderr.contains("--reward must be reward functions NAME or NAME=WEIGHT"), weight.stderr)
        XCTAssertFalse(weight.stderr.contains("language model's directory"), weight.stderr)
        XCTAssertEqual(CLI.occurrences(of: "error:", in: refused.stderr), 1, refused.stderr)
    }

    /// Sixteen pairs per micro-batch: the loss sums its pairs in step-batch order, so two runs give
    /// the same bits (summed in a dictionary's order, which each process seeds anew, they did not);
    /// and a pair longer than --max-length is dropped, as TRL's RewardTrainer filters it.
    func testRunsRepeatToTheBitAndLongPairsAreDropped() throws {
        let dir = CLI.tempDir("reward-repeat")
        let data = Self.writePairsWithMargins(dir)
        let args = Self.args(data).map { $0 == "3" ? "32" : $0 == "7" ? "16" : $0 }
        XCTAssertEqual(args.filter { $0 == "32" || $0 == "16" }.count, 2)
        XCTAssertEqual(CLI.sftDist(args + ["--out", dir + "/a"]).status, 0)
        XCTAssertEqual(CLI.sftDist(args + ["--out", dir + "/b"]).status, 0)
        XCTAssertEqual(CLI.losses(dir + "/a").map(\.bitPattern), CLI.losses(dir + "/b").map(\.bitPattern))
        // 28 of the 40 pairs have a side of more than 8 tokens (the byte tokenizer: a character each, and the eos).
        let r = CLI.sftDist(["train", "--model", "tiny", "--data", data, "--objective", "reward", "--steps", "1", "--max-length", "8",
                             "--out", dir + "/short"])
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.all.contains("loaded 12 of 40 records from \(data) (dropped 28 longer than 8 tokens)"), r.all)
    }

    /// Each rank reads its own copy of a --reward model: a node with another copy is refused.
    func testARewardModelMustBeTheSameOnEveryRank() throws {
        let dir = CLI.tempDir("reward-ranks")
        let data = DPOCLITests.writePairs(dir)
        let r0 = dir + "/r0", r1 = dir + "/r1"
        for (cwd, seed) in [(r0, "1"), (r1, "2")] {
            try FileManager.default.createDirectory(atPath: cwd, withIntermediateDirectories: true)
            XCTAssertEqual(CLI.sftDist(Self.args(data) + ["--seed", seed, "--steps", "1", "--out", cwd + "/judge"]).status, 0)
        }
        let grpo = ["train", "--model", "tiny", "--objective", "grpo", "--reward", "judge/model", "--steps", "1", "--batch-size", "8",
                    "--rollouts", "4", "--max-completion-length", "4", "--eval-examples", "0", "--quiet", "--out", dir + "/out"]
        let r = CLI.mpirunEach([(grpo, r0), (grpo, r1)], seconds: 120)
        XCTAssertNotEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stderr.contains("--reward judge/model") && r.stderr.contains("other weights than rank 0"), r.stderr)
    }

    /// A checkpoint records its reward models' weights: a resume whose `--reward` path holds
    /// other weights is refused in one line (it resumed and scored otherwise), and with the
    /// weights back it resumes to the bit.
    func testAResumeReadsTheRewardModelItsRunRead() throws {
        let dir = CLI.tempDir("reward-resume")
        let data = DPOCLITests.writePairs(dir)
        for (name, seed) in [("first", "1"), ("second", "2")] {
            XCTAssertEqual(CLI.sftDist(Self.args(data) + ["--seed", seed, "--steps", "1", "--out", dir + "/" + name]).status, 0)
        }
        let live = dir + "/judge", fm = FileManager.default
        try fm.copyItem(atPath: dir + "/first/model", toPath: live)
        let grpo = ["train", "--model", "tiny", "--objective", "grpo", "--reward", live, "--steps", "2", "--batch-size", "8",
                    "--rollouts", "4", "--max-completion-length", "6", "--lr", "1e-2", "--eval-examples", "0", "--quiet"]
        let straight = CLI.sftDist(grpo + ["--out", dir + "/a", "--save-every", "1"])
        XCTAssertEqual(straight.status, 0, straight.all)
        let checkpoint = dir + "/a/checkpoints/step-000001"
        try fm.removeItem(atPath: live)
        try fm.copyItem(atPath: dir + "/second/model", toPath: live)
        let refused = CLI.sftDist(grpo + ["--out", dir + "/b", "--resume", checkpoint])
        XCTAssertEqual(refused.status, 1, refused.all)
        XCTAssertTrue(refused.stderr.contains("\(checkpoint): --reward \(live) holds another reward model (weights, tokenizer or pad_token_id) than the one the checkpoint's run read under that name"), refused.stderr)
        XCTAssertEqual(CLI.occurrences(of: "error:", in: refused.stderr), 1, refused.stderr)
        // The same weights read past another pad_token_id: another reward model too.
        try fm.removeItem(atPath: live)
        try fm.copyItem(atPath: dir + "/first/model", toPath: live)
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: live + "/config.json"))) as! [String: Any]
        let pad = config["pad_token_id"] as? Int
        config["pad_token_id"] = (pad ?? 0) == 65 ? 66 : 65
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: live + "/config.json"))
        let padded = CLI.sftDist(grpo + ["--out", dir + "/b2", "--resume", checkpoint])
        XCTAssertEqual(padded.status, 1, padded.all)
        XCTAssertTrue(padded.stderr.contains("holds another reward model (weights, tokenizer or pad_token_id)"), padded.stderr)
        try fm.removeItem(atPath: live)
        try fm.copyItem(atPath: dir + "/first/model", toPath: live)
        let resumed = CLI.sftDist(grpo + ["--out", dir + "/c", "--resume", checkpoint])
        XCTAssertEqual(resumed.status, 0, resumed.all)
        XCTAssertEqual(CLI.losses(dir + "/c").map(\.bitPattern), CLI.losses(dir + "/a").map(\.bitPattern))
        XCTAssertEqual(CLI.losses(dir + "/a").count, 2)
    }
}
