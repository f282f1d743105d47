import Foundation
import XCTest

/// A LoRA reward model (`--objective reward --lora-rank r`, TRL's RewardTrainer with a peft
/// config) on the transformers-made Llama fixture, under real mpirun: the same losses at 1 and 2
/// ranks; OUT/model/ is peft's SEQ_CLS adapter with the trained score head; a resume gives the
/// same adapter to the bit; `score --adapter` reads the rewards the merged model gives.
final class LoRARewardCLITests: XCTestCase {
    static let base = LoRACLITests.base

    static func args(_ data: String) -> [String] {
        ["train", "--model", base, "--data", data, "--objective", "reward", "--lora-rank", "4", "--lora-alpha", "8",
         "--lora-targets", "q_proj,v_proj,down_proj", "--steps", "6", "--batch-size", "7", "--micro-batch-size", "3",
         "--lr", "1e-2", "--warmup-steps", "0", "--eval-every", "0", "--save-every", "3", "--quiet"]
    }

    /// The tensors of a safetensors file by name, as raw bytes (its JSON header's offsets).
    static func tensors(_ path: String) throws -> [String: Data] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let n = Int(data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as! [String: Any]
        var out: [String: Data] = [:]
        for (name, info) in header where name != "__metadata__" {
            let offsets = (info as! [String: Any])["data_offsets"] as! [Int]
            out[name] = data.subdata(in: (8 + n + offsets[0])..<(8 + n + offsets[1]))
        }
        return out
    }

    static func rewards(_ r: CLI.Result) -> [Double] {
        r.stdout.split(separator: "\n").compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["reward"] as? Double }
    }

    func testALoRARewardModelTrainsAtAnyRankCountResumesAndScoresAsMerged() throws {
        let dir = CLI.tempDir("lora-reward")
        let data = DPOCLITests.writePairs(dir)
        var outs: [String] = []
        for n in [1, 2] {
            let out = dir + "/run-\(n)"
            let r = CLI.mpirun(n, Self.args(data) + ["--merge-lora", "--out", out], seconds: 180)
            XCTAssertEqual(r.status, 0, r.all)
            outs.append(out)
        }
        let runs = outs.map(CLI.trainingRows)
        XCTAssertEqual(runs.map(\.count), [6, 6])
        XCTAssertLessThan(runs[0][5]["loss"] ?? .nan, runs[0][0]["loss"] ?? .nan, "the adapters and head learn")
        for (i, (a, b)) in zip(runs[0], runs[1]).enumerated() {
            for key in ["loss", "accuracy", "margin", "mean_reward", "grad_norm"] {
                let x = a[key] ?? .nan, y = b[key] ?? .nan
                XCTAssertEqual(x, y, accuracy: 1e-5 * max(abs(x), 1e-2), "step \(i + 1) \(key): -n 1 \(x) vs -n 2 \(y)")
            }
        }
        // peft's SEQ_CLS adapter: LoRA tensors and the whole score head, which trained (the
        // step-3 checkpoint's differs from the final one).
        let out = outs[1]
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/model/adapter_config.json"))) as! [String: Any]
        XCTAssertEqual(config["task_type"] as? String, "SEQ_CLS")
        XCTAssertEqual(config["modules_to_save"] as? [String], ["classifier", "score"])
        let final = try Self.tensors(out + "/model/adapter_model.safetensors")
        let early = try Self.tensors(out + "/checkpoints/step-000003/adapter/adapter_model.safetensors")
        XCTAssertEqual(final.keys.filter { !$0.contains(".lora_") }, ["base_model.model.score.weight"])
        XCTAssertEqual(final.keys.filter { $0.contains(".lora_A.") }.count, 6)
        XCTAssertNotNil(early["base_model.model.score.weight"])
        XCTAssertNotEqual(final["base_model.model.score.weight"], early["base_model.model.score.weight"], "the head trains")

        // Resumed at step 3 into another directory: the same adapter, head included, to the bit.
        let resumed = dir + "/resumed"
        let r = CLI.mpirun(2, Self.args(data) + ["--out", resumed, "--resume", out + "/checkpoints/step-000003"], seconds: 180)
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertEqual(try? Self.tensors(resumed + "/model/adapter_model.safetensors"), final, "resumed adapter differs")

        // score: base + adapter gives each row's reward, as the merged model (--merge-lora and
        // merge-lora) does; the base alone is a causal LM, which gives no reward.
        let rows = dir + "/rows.jsonl"
        try ["{\"prompt\": \"3+4=\", \"completion\": \"7\"}", "{\"prompt\": \"3+4=\", \"completion\": \"8\"}",
             "{\"prompt\": \"12+30=\", \"completion\": \"42\"}"].joined(separator: "\n").write(toFile: rows, atomically: true, encoding: .utf8)
        let withAdapter = CLI.mpirun(2, ["score", "--model", Self.base, "--adapter", out + "/model", "--data", rows])
        XCTAssertEqual(withAdapter.status, 0, withAdapter.all)
        let m = CLI.sftDist(["merge-lora", "--model", Self.base, "--adapter", out + "/model", "--out", dir + "/merged"])
        XCTAssertEqual(m.status, 0, m.all)
        let (a, b, c) = (Self.rewards(withAdapter), Self.rewards(CLI.sftDist(["score", "--model", out + "/model-merged", "--data", rows])),
                         Self.rewards(CLI.sftDist(["score", "--model", dir + "/merged", "--data", rows])))
        XCTAssertEqual(a.count, 3)
        XCTAssertEqual(b, c)
        XCTAssertLessThanOrEqual(zip(a, b).map { abs($0 - $1) }.max() ?? 1, 1e-5)
        XCTAssertEqual(Set(a).count, 3, "the rewards tell the rows apart")

        // The tokenizer saved with the adapter sets the pad its rewards are read past, as TRL sets
        // pad_token_id from it: with <|end_of_text|> (621, not the eos) the reward is read at the
        // eos; merge-lora writes that pad, and the merged model gives the same rewards.
        let padded = dir + "/padded"
        try FileManager.default.copyItem(atPath: out + "/model", toPath: padded)
        var tokenizerConfig = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: padded + "/tokenizer_config.json"))) as! [String: Any]
        tokenizerConfig["pad_token"] = "<|end_of_text|>"
        try JSONSerialization.data(withJSONObject: tokenizerConfig).write(to: URL(fileURLWithPath: padded + "/tokenizer_config.json"))
        let p = Self.rewards(CLI.sftDist(["score", "--model", Self.base, "--adapter", padded, "--data", rows]))
        XCTAssertEqual(CLI.sftDist(["merge-lora", "--model", Self.base, "--adapter", padded, "--out", dir + "/merged-padded"]).status, 0)
        let mergedConfig = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/merged-padded/config.json"))) as! [String: Any]
        XCTAssertEqual(mergedConfig["pad_token_id"] as? Int, 621)
        let pm = Self.rewards(CLI.sftDist(["score", "--model", dir + "/merged-padded", "--data", rows]))
        XCTAssertEqual(p.count, 3)
        XCTAssertLessThanOrEqual(zip(p, pm).map { abs($0 - $1) }.max() ?? 1, 1e-5)
        XCTAssertGreaterThan(zip(p, a).map { abs($0 - $1) }.max() ?? 0, 1e-3, "the pad moves where the reward is read")

        // eval, generate and select need a causal LM: a reward model's adapter is one line, not a trap.
        for command in [["eval", "--data", rows], ["generate", "--prompt", "3+4="]] {
            let e = CLI.sftDist([command[0], "--model", Self.base, "--adapter", out + "/model"] + command.dropFirst())
            XCTAssertEqual(e.status, 1, e.all)
            XCTAssertTrue(e.stderr.contains("holds a reward model's adapter (task_type SEQ_CLS, or modules_to_save with score), which scores whole sequences"), e.stderr)
            XCTAssertEqual(CLI.occurrences(of: "error:", in: e.stderr), 1, e.stderr)
        }

        // As a reward function the adapter is merged first (one line saying how).
        let grpo = CLI.sftDist(["train", "--model", Self.base, "--objective", "grpo", "--reward", out + "/model", "--steps", "1", "--dry-run"])
        XCTAssertEqual(grpo.status, 1, grpo.all)
        XCTAssertTrue(grpo.stderr.contains("holds a LoRA adapter, not a reward model; merge it into its base first: sft-dist merge-lora"), grpo.stderr)
        XCTAssertEqual(CLI.occurrences(of: "error:", in: grpo.stderr), 1, grpo.stderr)
    }
}
