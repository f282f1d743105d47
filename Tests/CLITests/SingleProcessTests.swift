import Foundation
import XCTest

/// The binary without mpirun: the size-1 communicator, every subcommand, and bad input.
final class SingleProcessTests: XCTestCase {
    let tiny = ["--model", "tiny", "--steps", "6", "--batch-size", "4", "--micro-batch-size", "2",
                "--eval-examples", "4", "--max-new-tokens", "3", "--quiet"]

    func testTrainThenEvalScoreGenerateTokenize() throws {
        let out = CLI.tempDir("e2e")
        let t = CLI.sftDist(["train"] + tiny + ["--out", out])
        XCTAssertEqual(t.status, 0, t.all)
        for f in ["metrics.jsonl", "loss.svg", "recipe.yaml", "model/config.json", "model/model.safetensors", "data/train.jsonl"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + f), "missing \(f)")
        }
        XCTAssertEqual(CLI.losses(out).count, 6)
        // The names transformers' Trainer and TRL's SFTTrainer give the same figures.
        let rows = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        for key in ["loss", "learning_rate", "grad_norm", "mean_token_accuracy", "entropy"] {
            XCTAssertTrue(rows.filter { $0["eval_loss"] == nil }.allSatisfy { $0[key] is NSNumber }, "step rows without \(key): \(rows)")
        }
        XCTAssertTrue(rows.contains { $0["eval_loss"] is NSNumber && $0["eval_mean_token_accuracy"] is NSNumber }, "\(rows)")
        let e = CLI.sftDist(["eval", "--model", out + "/model", "--data", out + "/data/heldout.jsonl", "--examples", "5"])
        XCTAssertEqual(e.status, 0, e.all)
        XCTAssertTrue(e.stdout.contains("accuracy (exact)"), e.stdout)
        let s = CLI.sftDist(["score", "--model", out + "/model", "--data", out + "/data/heldout.jsonl"])
        XCTAssertEqual(s.status, 0, s.all)
        let first = try JSONSerialization.jsonObject(with: Data(s.stdout.split(separator: "\n")[0].utf8)) as! [String: Any]
        let lps = first["completion_logprobs"] as! [Double]
        XCTAssertFalse(lps.isEmpty)
        XCTAssertTrue(lps.allSatisfy { $0 <= 0 })
        let g = CLI.sftDist(["generate", "--model", out + "/model", "--prompt", "add 1 2 =", "--max-new-tokens", "4", "--json"])
        XCTAssertEqual(g.status, 0, g.all)
        let gj = try JSONSerialization.jsonObject(with: Data(g.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(gj["prompt"] as? String, "add 1 2 =")
        let k = CLI.sftDist(["tokenize", "hi<|endoftext|>"])
        XCTAssertEqual(k.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "[104, 105, 256]")
    }

    /// The default `--eval-every -1` evaluates four times during the run, none on the last
    /// step (the final evaluation is there): 20 steps → before, 4, 8, 12, 16, after.
    func testDefaultEvaluationsAreFourDuringTheRun() throws {
        let out = CLI.tempDir("eval-schedule")
        let t = CLI.sftDist(["train", "--model", "tiny", "--steps", "20", "--batch-size", "4", "--eval-examples", "0", "--quiet", "--out", out])
        XCTAssertEqual(t.status, 0, t.all)
        let text = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8)
        let steps = text.split(separator: "\n").compactMap { line -> Int? in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], o["eval_loss"] != nil else { return nil }
            return (o["step"] as? NSNumber)?.intValue
        }
        XCTAssertEqual(steps, [0, 4, 8, 12, 16, 20])
    }

    /// With the built-in data, `--heldout FILE` is the held-out set (it was ignored, the log
    /// naming the file); a run refused after loading (a --freeze that matches nothing) leaves
    /// no output directory, not even the built-in data's files.
    func testBuiltinDataWithHeldoutFileAndNothingLeftByARefusedRun() throws {
        let dir = CLI.tempDir("builtin-heldout")
        let held = dir + "/held.jsonl"
        try #"{"prompt": "add 1 2 =", "completion": " 3"}"#.write(toFile: held, atomically: true, encoding: .utf8)
        let r = CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--batch-size", "4", "--eval-examples", "0", "--heldout", held, "--out", dir + "/run"])
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stdout.contains("held-out: 1 examples from \(held)"), r.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/run/data/heldout.jsonl"), "no unused built-in held-out file")
        // The run's final held-out loss is the trained model's loss on the file.
        let eval = CLI.sftDist(["eval", "--model", dir + "/run/model", "--data", held, "--examples", "0", "--json"])
        XCTAssertEqual(eval.status, 0, eval.all)
        let direct = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as? [String: Any])?["eval_loss"] as? Double)
        let rows = try String(contentsOfFile: dir + "/run/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        let last = try XCTUnwrap(rows.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }.last { $0["eval_loss"] != nil })
        XCTAssertEqual(last["eval_loss"] as? Double, direct, "the run evaluated on --heldout")

        let refused = CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--freeze", "nomatch", "--out", dir + "/refused"])
        XCTAssertEqual(refused.status, 1, refused.all)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/refused"), "a refused run leaves nothing behind")
    }

    func testRecipeFileWithFlagOverride() throws {
        let dir = CLI.tempDir("recipe")
        try "model: tiny\nsteps: 50\nbatch_size: 4\nmicro_batch_size: 2\neval_examples: 2\nmax_new_tokens: 2\n"
            .write(toFile: dir + "/r.yaml", atomically: true, encoding: .utf8)
        let r = CLI.sftDist(["--config", dir + "/r.yaml", "--steps", "3", "--out", dir + "/out", "--quiet"])
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertEqual(CLI.losses(dir + "/out").count, 3, "the flag overrides the recipe's steps")
        // A flag switches off a feature the recipe configures: its keys are then not refused as
        // unread (they are when the recipe itself sets them where nothing reads them).
        try "model: tiny\nsteps: 2\nbatch_size: 4\neval_examples: 0\nlora_rank: 4\nlora_alpha: 8\nselection: uds\nselection_pool: 3\nsave_every: 0\n"
            .write(toFile: dir + "/f.yaml", atomically: true, encoding: .utf8)
        let off = CLI.sftDist(["--config", dir + "/f.yaml", "--lora-rank", "0", "--selection", "none", "--out", dir + "/off", "--quiet"])
        XCTAssertEqual(off.status, 0, off.all)
        let kept = CLI.sftDist(["--config", dir + "/f.yaml", "--lora-rank", "0", "--out", dir + "/kept", "--quiet"])
        XCTAssertEqual(kept.status, 0, kept.all)
        // Also a recipe's ref_model with its selector switched off, and a smoke test's --steps 1
        // under a recipe's steps_per_generation (a hostile review's finds).
        try "model: tiny\nsteps: 2\nbatch_size: 4\neval_examples: 0\nselection: learnability\nref_model: \(dir)/off/model\n"
            .write(toFile: dir + "/s.yaml", atomically: true, encoding: .utf8)
        let noSelector = CLI.sftDist(["--config", dir + "/s.yaml", "--selection", "none", "--out", dir + "/nosel", "--quiet"])
        XCTAssertEqual(noSelector.status, 0, noSelector.all)
        try "model: tiny\nsteps: 4\nbatch_size: 4\neval_examples: 0\nobjective: grpo\nrollouts: 2\nrewards: [task]\nsteps_per_generation: 2\n"
            .write(toFile: dir + "/g2.yaml", atomically: true, encoding: .utf8)
        let smoke = CLI.sftDist(["--config", dir + "/g2.yaml", "--steps", "1", "--out", dir + "/smoke", "--quiet"])
        XCTAssertEqual(smoke.status, 0, smoke.all)
        try "model: tiny\nlora_alpha: 8\n".write(toFile: dir + "/g.yaml", atomically: true, encoding: .utf8)
        let unread = CLI.sftDist(["--config", dir + "/g.yaml", "--out", dir + "/unread", "--quiet"])
        XCTAssertEqual(unread.status, 1, unread.all)
        XCTAssertTrue(unread.stderr.contains("g.yaml:2: lora_alpha needs lora_rank"), unread.all)
    }

    func testUnknownRecipeKeyNamesTheKey() throws {
        let dir = CLI.tempDir("badkey")
        try "model: tiny\nlearning_rate: 0.1\n".write(toFile: dir + "/r.yaml", atomically: true, encoding: .utf8)
        let r = CLI.sftDist(["--config", dir + "/r.yaml", "--out", dir + "/out"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("r.yaml:2: unknown key \"learning_rate\""), r.stderr)
    }

    func testOutOfRangeValueNamesTheField() {
        let r = CLI.sftDist(["train"] + tiny + ["--batch-size", "0", "--out", CLI.tempDir("range")])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("--batch-size must be an integer in 1…1048576 (got 0)"), r.stderr)
    }

    func testMalformedJSONLStopsWithFileAndLine() throws {
        let dir = CLI.tempDir("badjsonl")
        try "{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"prompt\": 3, \"completion\": \"b\"}\n"
            .write(toFile: dir + "/d.jsonl", atomically: true, encoding: .utf8)
        let r = CLI.sftDist(["train"] + tiny + ["--data", dir + "/d.jsonl", "--out", dir + "/out"])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines),
                       "sft-dist: error: \(dir)/d.jsonl:2: field \"prompt\" must be a string")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out/model"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out/metrics.jsonl"))
    }

    /// A --model value that is both a preset and a directory here is refused (the preset won,
    /// a random model where the directory was meant); ./NAME reads the directory.
    func testAPresetNameThatIsAlsoADirectoryIsRefused() throws {
        let dir = CLI.tempDir("preset-dir")
        XCTAssertEqual(CLI.sftDist(["train"] + tiny + ["--out", dir + "/run"]).status, 0)
        try FileManager.default.copyItem(atPath: dir + "/run/model", toPath: dir + "/tiny")
        let held = dir + "/run/data/heldout.jsonl"
        let r = CLI.sftDist(["eval", "--model", "tiny", "--data", held, "--examples", "0"], cwd: dir)
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertTrue(r.stderr.contains("--model tiny: names both the preset tiny and the directory ./tiny"), r.all)
        // train --dry-run refuses it as the run does (it printed the recipe and exited 0).
        let dry = CLI.sftDist(["train", "--model", "tiny", "--dry-run"], cwd: dir)
        XCTAssertEqual(dry.status, 1, dry.all)
        XCTAssertTrue(dry.stderr.contains("--model tiny: names both the preset tiny and the directory ./tiny"), dry.all)
        XCTAssertEqual(CLI.sftDist(["eval", "--model", "./tiny", "--data", held, "--examples", "0"], cwd: dir).status, 0)
        XCTAssertEqual(CLI.sftDist(["eval", "--model", "tiny", "--data", held, "--examples", "0"]).status, 0, "the preset elsewhere")
        // A directory of that name that is not a model (a run's --out tiny) is no ambiguity: a
        // requeued `train --model tiny --out tiny --resume latest` runs again.
        let jobDir = CLI.tempDir("preset-run")
        let job = ["train"] + tiny + ["--out", "tiny", "--save-every", "3", "--resume", "latest"]
        XCTAssertEqual(CLI.sftDist(job, cwd: jobDir).status, 0)
        let again = CLI.sftDist(job, cwd: jobDir)
        XCTAssertEqual(again.status, 0, again.all)
    }

    func testMissingModelDirectoryIsOneClearLine() {
        let r = CLI.sftDist(["eval", "--model", "/nonexistent/model", "--data", "/nonexistent.jsonl"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.hasPrefix("sft-dist: error: /nonexistent/model: no such model directory"), r.stderr)
    }
}
