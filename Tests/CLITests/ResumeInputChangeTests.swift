import Foundation
import XCTest

/// What a resumed run may change: `max_new_tokens` is an evaluation setting, except where
/// self-training or spin generate their training rows with it; `--prompts`' bytes are hashed
/// into the checkpoint as `--unlabelled`'s are. Before, both changes resumed with exit 0 into a
/// run that differed from step 7 on (a hostile review's finds).
final class ResumeInputChangeTests: XCTestCase {
    func killAfterStep(_ args: [String], _ step: Int) {
        let r = try? BackgroundJob.sftDist(args, seconds: 120, environment: ["SFT_DIST_FAULT": "after-step:\(step)"]).wait()
        XCTAssertNotEqual(r?.result.status, 0, "the fault point did not stop the run")
    }

    func testMaxNewTokensMustMatchWhenSelfTrainingGeneratesWithIt() throws {
        let dir = CLI.tempDir("resume-mnt")
        XCTAssertEqual(CLI.sftDist(["make-data", "--out", dir + "/u.jsonl", "--unlabelled", "--count", "60"]).status, 0)
        let selfTrain = ["train", "--model", "tiny", "--steps", "12", "--batch-size", "8", "--eval-examples", "4", "--quiet",
                         "--self-train", "semievol", "--unlabelled", dir + "/u.jsonl", "--self-train-scorer", "task",
                         "--self-train-every", "6", "--self-train-arg", "prompts=8", "--save-every", "5", "--out", dir + "/st"]
        killAfterStep(selfTrain, 7)
        let refused = CLI.sftDist(selfTrain + ["--resume", "latest", "--max-new-tokens", "4"])
        XCTAssertEqual(refused.status, 1, refused.all)
        XCTAssertTrue(refused.stderr.contains("max_new_tokens is 12 there but 4 here"), refused.all)
        XCTAssertEqual(CLI.sftDist(selfTrain + ["--resume", "latest"]).status, 0)
        // Without self-training it only sets the evaluations' answers: the change is taken.
        let plain = ["train", "--model", "tiny", "--steps", "12", "--batch-size", "8", "--eval-examples", "4", "--quiet",
                     "--save-every", "5", "--out", dir + "/plain"]
        killAfterStep(plain, 7)
        let r = CLI.sftDist(plain.filter { $0 != "--quiet" } + ["--resume", "latest", "--max-new-tokens", "4"])
        XCTAssertEqual(r.status, 0, r.all)
        // The summary's before → after: "before" was evaluated by the run this one continues.
        XCTAssertTrue(r.stdout.contains("exact-match accuracy on held-out: "), r.stdout)
    }

    /// merge_lora may change on resume, but a run without adapters resumed with --merge-lora
    /// wrote no model-merged/ with exit 0 (a fresh run refuses the flag).
    func testMergeLoRAOnAResumedRunWithoutAdaptersIsRefused() throws {
        let dir = CLI.tempDir("resume-merge")
        let plain = ["train", "--model", "tiny", "--steps", "4", "--batch-size", "8", "--eval-examples", "0", "--quiet",
                     "--save-every", "2", "--out", dir + "/plain"]
        XCTAssertEqual(CLI.sftDist(plain).status, 0)
        let r = CLI.sftDist(plain + ["--resume", dir + "/plain/checkpoints/step-000002", "--merge-lora"])
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertTrue(r.stderr.contains("--merge-lora needs lora_rank (--lora-rank r) > 0: the run being resumed fine-tunes every weight"), r.all)
    }

    func testChangedPromptsAreRefusedAtResume() throws {
        let dir = CLI.tempDir("resume-prompts")
        let prompts = dir + "/p.jsonl"
        XCTAssertEqual(CLI.sftDist(["make-data", "--out", prompts, "--count", "40"]).status, 0)
        let grpo = ["train", "--model", "tiny", "--objective", "grpo", "--reward", "task", "--rollouts", "4", "--batch-size", "8",
                    "--steps", "6", "--eval-examples", "0", "--quiet", "--prompts", prompts, "--save-every", "2", "--out", dir + "/g"]
        killAfterStep(grpo, 3)
        let original = try String(contentsOfFile: prompts, encoding: .utf8)
        try String(original.split(separator: "\n").dropFirst().joined(separator: "\n") + "\n").write(toFile: prompts, atomically: true, encoding: .utf8)
        let refused = CLI.sftDist(grpo + ["--resume", "latest"])
        XCTAssertEqual(refused.status, 1, refused.all)
        XCTAssertTrue(refused.stderr.contains("--prompts \(prompts) differs from the file the checkpoint's run read"), refused.all)
        // The same bytes under another path resume, as --data does (compared by content, the
        // path was refused as "a different recipe"); no --prompts at all is refused.
        let copy = dir + "/copy.jsonl"
        try original.write(toFile: copy, atomically: true, encoding: .utf8)
        let moved = grpo.map { $0 == prompts ? copy : $0 }
        let resumed = CLI.sftDist(moved + ["--resume", "latest"])
        XCTAssertEqual(resumed.status, 0, resumed.all)
        let dropped = CLI.sftDist(grpo.filter { $0 != "--prompts" && $0 != prompts } + ["--resume", dir + "/g/checkpoints/step-000002"])
        XCTAssertEqual(dropped.status, 1, dropped.all)
        XCTAssertTrue(dropped.stderr.contains("the checkpoint's run read a --prompts file"), dropped.all)
    }

    /// The evaluated sets are compared by content too: `--eval-data add=mul.jsonl` on resume put
    /// mul's numbers under add's series and retention row ("add 5.5327 → 4.2486": add.jsonl
    /// before, mul.jsonl after), exit 0; so did another --heldout file. The same bytes under
    /// another path, and a new name, still resume.
    func testAnotherSetUnderAnEvaluatedNameIsRefusedAtResume() throws {
        let dir = CLI.tempDir("resume-eval-data")
        for (kind, seed) in [("add", "1"), ("mul", "2")] {
            XCTAssertEqual(CLI.sftDist(["make-data", "--out", dir + "/\(kind).jsonl", "--kinds", kind, "--count", "20", "--seed", seed]).status, 0)
        }
        XCTAssertEqual(CLI.sftDist(["make-data", "--out", dir + "/d.jsonl", "--count", "100"]).status, 0)
        let run = ["train", "--model", "tiny", "--data", dir + "/d.jsonl", "--heldout", dir + "/add.jsonl", "--batch-size", "8",
                   "--steps", "6", "--save-every", "3", "--eval-every", "3", "--eval-examples", "0", "--quiet", "--out", dir + "/r"]
        killAfterStep(run + ["--eval-data", "add=\(dir)/add.jsonl"], 4)
        let other = CLI.sftDist(run + ["--eval-data", "add=\(dir)/mul.jsonl", "--resume", "latest"])
        XCTAssertEqual(other.status, 1, other.all)
        XCTAssertTrue(other.stderr.contains("--eval-data add differs from the set the checkpoint's run evaluated under that name"), other.all)
        let heldout = CLI.sftDist(run.map { $0 == dir + "/add.jsonl" ? dir + "/mul.jsonl" : $0 } + ["--eval-data", "add=\(dir)/add.jsonl", "--resume", "latest"])
        XCTAssertEqual(heldout.status, 1, heldout.all)
        XCTAssertTrue(heldout.stderr.contains("the held-out set (--heldout, or the split of --data) differs"), heldout.all)
        try FileManager.default.copyItem(atPath: dir + "/add.jsonl", toPath: dir + "/add-copy.jsonl")
        let same = CLI.sftDist(run + ["--eval-data", "add=\(dir)/add-copy.jsonl", "--eval-data", "mul=\(dir)/mul.jsonl", "--resume", "latest"])
        XCTAssertEqual(same.status, 0, same.all)
    }

    /// `--model` is compared as a path, but the same directory spelled another way (`./base`
    /// for `base`, a symlink) is the same model: it was refused as "a different recipe" (a
    /// hostile review). Another directory, even a copy, stays refused: a LoRA run's adapters
    /// name their base by this path.
    func testTheSameModelDirectorySpelledOtherwiseResumes() throws {
        let dir = CLI.tempDir("resume-model-path")
        let base = dir + "/base"
        try FileManager.default.copyItem(atPath: HFModelCLITests.fixtures + "/models/gpt2", toPath: base)
        try FileManager.default.createSymbolicLink(atPath: dir + "/link", withDestinationPath: base)
        let run = { (model: String) in ["train", "--model", model, "--data", "builtin:tasks", "--steps", "2", "--batch-size", "4",
                                        "--eval-examples", "0", "--quiet", "--lora-rank", "2", "--save-every", "1", "--out", dir + "/out"] }
        XCTAssertEqual(CLI.sftDist(run(base)).status, 0)
        let checkpoint = ["--resume", dir + "/out/checkpoints/step-000001"]
        for spelling in [dir + "/./base", dir + "/out/../base/", dir + "/link"] {
            let r = CLI.sftDist(run(spelling) + checkpoint)
            XCTAssertEqual(r.status, 0, "\(spelling): \(r.all)")
        }
        try FileManager.default.copyItem(atPath: base, toPath: dir + "/copy")
        let copy = CLI.sftDist(run(dir + "/copy") + checkpoint)
        XCTAssertEqual(copy.status, 1, copy.all)
        XCTAssertTrue(copy.stderr.contains("checkpoint was made with a different recipe: model is "), copy.all)
    }
    /// Method arguments spelled at their defaults in one run and left out in the other are the
    /// same run: it resumes and continues with the uninterrupted run's losses (both were
    /// refused as "a different recipe"). Another value is refused as before.
    func testMethodArgumentsSpelledAtTheirDefaultsResume() throws {
        let dir = CLI.tempDir("resume-arg-defaults")
        let base = ["train", "--model", "tiny", "--steps", "4", "--save-every", "2", "--eval-examples", "0", "--quiet",
                    "--selection", "loss", "--selection-pool", "2"]
        let spelled = ["--objective-arg", "label_smoothing=0", "--selection-arg", "budget=0.5", "--selection-arg", "order=highest"]
        XCTAssertEqual(CLI.sftDist(base + spelled + ["--out", dir + "/whole"]).status, 0)
        try FileManager.default.copyItem(atPath: dir + "/whole", toPath: dir + "/part")
        let checkpoint = dir + "/part/checkpoints/step-000002"
        // As if stopped after step 2: steps 3 and 4 can only come from the resumed run.
        let log = dir + "/part/metrics.jsonl"
        try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
            .filter { !$0.hasPrefix("{\"step\": 3,") && !$0.hasPrefix("{\"step\": 4,") }.map { $0 + "\n" }.joined()
            .write(toFile: log, atomically: true, encoding: .utf8)
        try FileManager.default.removeItem(atPath: dir + "/part/checkpoints/step-000004")
        let resumed = CLI.sftDist(base + ["--out", dir + "/part", "--resume", checkpoint])
        XCTAssertEqual(resumed.status, 0, resumed.all)
        // Steps 3 and 4 (`"step": N, "loss": X`; the rest of a row holds timings).
        func losses(_ out: String) throws -> [String] {
            try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
                .filter { $0.contains("\"loss\":") && ($0.hasPrefix("{\"step\": 3,") || $0.hasPrefix("{\"step\": 4,")) }
                .map { String($0.split(separator: ", \"learning_rate\"")[0]) }
        }
        let whole = try losses(dir + "/whole")
        XCTAssertEqual(whole.count, 2)
        XCTAssertEqual(try losses(dir + "/part"), whole)
        // A recipe file's self_train_args switched off by --self-train none: the saved recipe
        // has no flag origins, and its arguments resolved on one side only were refused.
        try "self_train_args:\n  k: 4\n".write(toFile: dir + "/st.yaml", atomically: true, encoding: .utf8)
        let off = ["train", "--config", dir + "/st.yaml", "--self-train", "none", "--model", "tiny", "--steps", "4", "--save-every", "2",
                   "--eval-examples", "0", "--quiet", "--out", dir + "/off"]
        XCTAssertEqual(CLI.sftDist(off).status, 0)
        let offResumed = CLI.sftDist(off + ["--resume", dir + "/off/checkpoints/step-000002"])
        XCTAssertEqual(offResumed.status, 0, offResumed.all)
        let other = CLI.sftDist(base + ["--selection-arg", "budget=0.25", "--out", dir + "/part", "--resume", checkpoint])
        XCTAssertEqual(other.status, 1, other.all)
        XCTAssertTrue(other.stderr.contains("selection_args is {budget: 0.5, order: highest} there but {budget: 0.25} here"), other.all)
    }
    /// A rollout run's rewards likewise: `--reward exact --reward-arg ignore_case=yes` resumes as
    /// `--reward exact=1 --reward-arg exact.ignore_case=true` (compared as written, it was refused).
    func testRewardsSpelledAnotherWayResume() throws {
        let dir = CLI.tempDir("resume-reward-spelling")
        let base = ["train", "--model", "tiny", "--objective", "grpo", "--steps", "2", "--save-every", "1", "--eval-examples", "0",
                    "--quiet", "--batch-size", "4", "--rollouts", "2", "--max-completion-length", "4", "--out", dir + "/run"]
        XCTAssertEqual(CLI.sftDist(base + ["--reward", "exact", "--reward-arg", "ignore_case=yes"]).status, 0)
        let checkpoint = ["--resume", dir + "/run/checkpoints/step-000001"]
        let resumed = CLI.sftDist(base + ["--reward", "exact=1", "--reward-arg", "exact.ignore_case=true"] + checkpoint)
        XCTAssertEqual(resumed.status, 0, resumed.all)
        let other = CLI.sftDist(base + ["--reward", "exact", "--reward-arg", "ignore_case=false"] + checkpoint)
        XCTAssertEqual(other.status, 1, other.all)
        XCTAssertTrue(other.stderr.contains("reward_args is {ignore_case: yes} there but {ignore_case: false} here"), other.all)
    }
    /// `num_tokens` is TRL's: every token of the sequences trained so far (each sequence's
    /// input positions, `tokens`, and its last token), and a resumed run goes on counting from
    /// the checkpoint's (`state.json`), so its series equals the uninterrupted run's. An
    /// evaluation's row carries the count as `eval_num_tokens`, as TRL's does.
    func testNumTokensCountsAsTRLAndContinuesOnResume() throws {
        let dir = CLI.tempDir("resume-num-tokens")
        let base = ["train", "--model", "tiny", "--steps", "4", "--save-every", "2", "--eval-examples", "0", "--quiet", "--batch-size", "6",
                    "--eval-every", "2"]
        func evalCounts(_ run: String) throws -> [[Double]] {
            try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
                .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                .filter { $0["eval_loss"] != nil }
                .map { [($0["step"] as? NSNumber)?.doubleValue ?? -1, ($0["eval_num_tokens"] as? NSNumber)?.doubleValue ?? -1] }
        }
        XCTAssertEqual(CLI.sftDist(base + ["--out", dir + "/whole"]).status, 0)
        let whole = CLI.trainingRows(dir + "/whole")
        XCTAssertEqual(whole.count, 4)
        var sum = 0.0
        for row in whole {
            sum += (row["tokens"] ?? 0) + 6   // six sequences a step, unpacked
            XCTAssertEqual(row["num_tokens"], sum, "\(row)")
        }
        // Before training, after step 2, and the final evaluation after step 4.
        XCTAssertEqual(try evalCounts(dir + "/whole"), [[0, 0], [2, whole[1]["num_tokens"] ?? -1], [4, whole[3]["num_tokens"] ?? -1]])
        try FileManager.default.copyItem(atPath: dir + "/whole", toPath: dir + "/part")
        // Metrics rows of steps 3 and 4 gone: the count can only come from the checkpoint.
        let log = dir + "/part/metrics.jsonl"
        try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
            .filter { !$0.hasPrefix("{\"step\": 3,") && !$0.hasPrefix("{\"step\": 4,") && !$0.hasPrefix("{\"step\": 2,") }.map { $0 + "\n" }.joined()
            .write(toFile: log, atomically: true, encoding: .utf8)
        try FileManager.default.removeItem(atPath: dir + "/part/checkpoints/step-000004")
        let resumed = CLI.sftDist(base + ["--out", dir + "/part", "--resume", dir + "/part/checkpoints/step-000002"])
        XCTAssertEqual(resumed.status, 0, resumed.all)
        XCTAssertEqual(CLI.trainingRows(dir + "/part").suffix(2).map { $0["num_tokens"] }, whole.suffix(2).map { $0["num_tokens"] })
        XCTAssertEqual(try evalCounts(dir + "/part").last, try evalCounts(dir + "/whole").last)
    }

    /// A non-finite loss ends the run advising nan_policy skip: that advice, and the final
    /// model's format, are taken by a resume (both were refused as "a different recipe").
    func testTheNaNAdviceAndTheSaveFormatMayChangeOnResume() throws {
        let out = CLI.tempDir("resume-nan")
        let run = ["train", "--model", "tiny", "--steps", "12", "--batch-size", "16", "--micro-batch-size", "8", "--lr", "1e6",
                   "--grad-clip", "0", "--warmup-steps", "11", "--save-every", "2", "--quiet", "--eval-every", "0", "--eval-examples", "0", "--out", out]
        let aborted = CLI.sftDist(run)
        XCTAssertEqual(aborted.status, 2, aborted.all)
        XCTAssertTrue(aborted.stderr.contains("or set nan_policy: skip to skip such steps"), aborted.all)
        let resumed = CLI.sftDist(run + ["--resume", "latest", "--nan-policy", "skip", "--save-format", "hf"])
        XCTAssertEqual(resumed.status, 0, resumed.all)
        XCTAssertEqual(CLI.loggedSteps(out).last, 12)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/model/tokenizer.json"), "the final model in the hf format")
        // A checkpoint's or a run's directory as --model says where its model is ("config.json: no such file").
        let checkpoint = out + "/checkpoints/" + (try XCTUnwrap(CLI.checkpoints(out).published.last))
        for dir in [checkpoint, out] {
            let e = CLI.sftDist(["eval", "--model", dir, "--data", out + "/data/heldout.jsonl", "--examples", "0"])
            XCTAssertEqual(e.status, 1, e.all)
            XCTAssertTrue(e.stderr.contains("\(dir): holds no config.json, but its model/ does (a run's or a checkpoint's directory): give \(dir)/model"), e.all)
        }
    }
}
