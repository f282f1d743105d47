import Foundation
import XCTest

/// LoRA through the CLI under real mpirun, on the transformers-made Llama fixture: the same
/// losses at 1 and 2 ranks (dropout on), OUT/model/ in peft's format and no full weights,
/// resume from a checkpoint to the same adapter and adapter EMA bit for bit, `score --adapter` equal to the
/// merged model's (`--merge-lora` and `merge-lora`), and bad input as one line.
final class LoRACLITests: XCTestCase {
    static let hf = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../ModelsTests/Fixtures/hf").standardized.path
    static let base = hf + "/models/llama", data = hf + "/data/chat.jsonl"
    static let train = ["train", "--model", base, "--data", data, "--lora-rank", "4", "--lora-alpha", "8", "--lora-dropout", "0.1",
                        "--lora-targets", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", "--steps", "4",
                        "--batch-size", "8", "--micro-batch-size", "2", "--optimizer", "sgd", "--lr", "0.3", "--warmup-steps", "1",
                        "--max-length", "32", "--eval-every", "0", "--eval-examples", "2", "--checksum-every", "2", "--quiet"]

    static func logProbs(_ r: CLI.Result) -> [Double] {
        r.stdout.split(separator: "\n").flatMap { line -> [Double] in
            let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            return (obj?["completion_logprobs"] as? [Double]) ?? []
        }
    }

    func testLoRAUnderMpirunRankInvariantResumableAndScoredAsMerged() throws {
        var runs: [[[String: Double]]] = []
        var outs: [String] = []
        for n in [1, 2] {
            let out = CLI.tempDir("lora-\(n)")
            let r = CLI.mpirun(n, Self.train + ["--save-every", "2", "--merge-lora", "--ema", "0.9", "--out", out], seconds: 180)
            XCTAssertEqual(r.status, 0, r.all)
            runs.append(CLI.trainingRows(out))
            outs.append(out)
            let files = (try? FileManager.default.contentsOfDirectory(atPath: out + "/model")) ?? []
            // peft's two files, and the tokenizer's as TRL's trainer saves them beside an adapter.
            let tokenizerFiles = try FileManager.default.contentsOfDirectory(atPath: Self.base).filter { $0.hasPrefix("tokenizer") || $0 == "chat_template.jinja" }
            XCTAssertEqual(Set(files), Set(["adapter_config.json", "adapter_model.safetensors"] + tokenizerFiles), "-n \(n)")
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/model-merged/model.safetensors"))
        }
        XCTAssertEqual(runs[0].count, 4)
        for (i, (one, two)) in zip(runs[0], runs[1]).enumerated() {
            for key in ["loss", "grad_norm"] {
                let a = one[key] ?? .nan, b = two[key] ?? .nan
                XCTAssertEqual(a, b, accuracy: 1e-5 * abs(a), "step \(i + 1) \(key): -n 1 \(a) vs -n 2 \(b)")
            }
        }
        XCTAssertLessThan(runs[0][3]["loss"]!, runs[0][0]["loss"]!, "the adapters learn")

        // Resume the 2-rank run from its step-2 checkpoint: the same adapter, and the same EMA
        // of the adapter (`--ema` keeps its average of the trainable set), bit for bit. Into
        // another directory, so that what is compared is what the resumed run wrote (in `out`
        // a resume that wrote nothing would find the uninterrupted run's files).
        let out = outs[1], resumedOut = CLI.tempDir("lora-2-resumed")
        let adapter = try Data(contentsOf: URL(fileURLWithPath: out + "/model/adapter_model.safetensors"))
        let ema = try Data(contentsOf: URL(fileURLWithPath: out + "/model-ema/adapter_model.safetensors"))
        XCTAssertNotEqual(ema, adapter, "the EMA lags the adapter")
        let r = CLI.mpirun(2, Self.train + ["--save-every", "2", "--ema", "0.9", "--out", resumedOut, "--resume", out + "/checkpoints/step-000002"], seconds: 180)
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertEqual(try? Data(contentsOf: URL(fileURLWithPath: resumedOut + "/model/adapter_model.safetensors")), adapter, "resumed adapter differs")
        XCTAssertEqual(try? Data(contentsOf: URL(fileURLWithPath: resumedOut + "/model-ema/adapter_model.safetensors")), ema, "resumed EMA differs")
        // Steps 1-2 come from the checkpoint's run (its metrics.jsonl), 3-4 from the resumed run.
        XCTAssertEqual(CLI.loggedSteps(resumedOut), [1, 2, 3, 4])
        XCTAssertEqual(CLI.trainingRows(resumedOut).map { $0["loss"]! }, runs[1].map { $0["loss"]! })

        // Base + adapter scores as the merged model (--merge-lora and merge-lora agree).
        let withAdapter = CLI.mpirun(2, ["score", "--model", Self.base, "--adapter", out + "/model", "--data", Self.data, "--max-length", "32"])
        XCTAssertEqual(withAdapter.status, 0, withAdapter.all)
        let merged = CLI.sftDist(["score", "--model", out + "/model-merged", "--data", Self.data, "--max-length", "32"])
        let m = CLI.sftDist(["merge-lora", "--model", Self.base, "--adapter", out + "/model", "--out", out + "/merged-again"])
        XCTAssertEqual(m.status, 0, m.all)
        let again = CLI.sftDist(["score", "--model", out + "/merged-again", "--data", Self.data, "--max-length", "32"])
        let plain = CLI.sftDist(["score", "--model", Self.base, "--data", Self.data, "--max-length", "32"])
        let (a, b, c, p) = (Self.logProbs(withAdapter), Self.logProbs(merged), Self.logProbs(again), Self.logProbs(plain))
        XCTAssertEqual(a.count, b.count); XCTAssertEqual(b, c)
        XCTAssertGreaterThan(a.count, 50)
        XCTAssertLessThanOrEqual(zip(a, b).map { abs($0 - $1) }.max() ?? 1, 1e-4)
        XCTAssertGreaterThan(zip(a, p).map { abs($0 - $1) }.max() ?? 0, 1e-2, "the adapter changes the scores")
        let g = CLI.sftDist(["generate", "--model", Self.base, "--adapter", out + "/model", "--prompt", "add 1 2 =", "--max-new-tokens", "3"])
        XCTAssertEqual(g.status, 0, g.all)
        // A checkpoint's model/ holds base and adapter tensors: refused, not evaluated as the base.
        let e = CLI.sftDist(["eval", "--model", out + "/checkpoints/step-000002/model", "--data", Self.data])
        XCTAssertEqual(e.status, 1, e.all)
        XCTAssertTrue(e.stderr.contains("a checkpoint of a LoRA run"), e.all)
    }

    /// An objective with a frozen reference (`--ref-model`) beside LoRA: the reference gets the
    /// same, zero adapters, so its layout matches and it computes its base.
    func testLoRAWithAReferenceModelObjective() {
        let base = CLI.tempDir("lora-ref-base"), out = CLI.tempDir("lora-ref")
        let quiet = ["--eval-every", "0", "--eval-examples", "0", "--quiet", "--batch-size", "4", "--micro-batch-size", "2"]
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--out", base] + quiet).status, 0)
        let r = CLI.mpirun(2, ["train", "--model", base + "/model", "--lora-rank", "2", "--objective", "asft", "--ref-model", base + "/model",
                               "--steps", "2", "--out", out] + quiet, seconds: 120)
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertEqual(CLI.trainingRows(out).count, 2)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/model/adapter_config.json"))
        // Learnability selection's reference the same way (it was refused: "the reference model
        // has 1289280 parameters, the model (--model) 1299520").
        let selected = CLI.mpirun(2, ["train", "--model", base + "/model", "--lora-rank", "2", "--selection", "learnability",
                                      "--selection-pool", "2", "--ref-model", base + "/model", "--steps", "2",
                                      "--out", out + "/selected"] + quiet, seconds: 120)
        XCTAssertEqual(selected.status, 0, selected.all)
        XCTAssertEqual(CLI.trainingRows(out + "/selected").count, 2)
        // An adapter directory as the reference: the loader's advice named --adapter, which train lacks.
        let adapterRef = CLI.sftDist(["train", "--model", base + "/model", "--objective", "asft", "--ref-model", out + "/model",
                                      "--steps", "1", "--out", out + "/adapter-ref"] + quiet)
        XCTAssertEqual(adapterRef.status, 1, adapterRef.all)
        XCTAssertTrue(adapterRef.stderr.contains("--ref-model \(out)/model: holds a LoRA adapter (adapter_config.json), not a model; a reference is a full model: merge the adapter into its base first (sft-dist merge-lora"), adapterRef.all)
    }

    /// `select --adapter` scores with base + adapter, as the merged model does (select had no
    /// --adapter, and its message pointed to one); `tokenize` reads an adapter's tokenizer
    /// without loading any weights.
    func testSelectWithAnAdapterScoresAsTheMergedModel() throws {
        let dir = CLI.tempDir("select-adapter")
        let quiet = ["--eval-every", "0", "--eval-examples", "0", "--quiet", "--batch-size", "4", "--lr", "1e-2"]
        XCTAssertEqual(CLI.sftDist(["make-data", "--out", dir + "/d.jsonl", "--count", "40"]).status, 0)
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--data", dir + "/d.jsonl", "--lora-rank", "4", "--steps", "4",
                                    "--merge-lora", "--out", dir + "/run"] + quiet).status, 0)
        let base = dir + "/run/model-base", adapter = dir + "/run/model"
        XCTAssertEqual(CLI.sftDist(["merge-lora", "--model", base, "--adapter", adapter, "--out", dir + "/merged"]).status, 0)
        // The adapter over a model it is merged into (merge-lora's, train's --merge-lora) would
        // apply it twice: said; over its base, nothing.
        for (model, twice) in [(dir + "/merged", true), (dir + "/run/model-merged", true), (base, false)] {
            let e = CLI.sftDist(["eval", "--model", model, "--adapter", adapter, "--data", dir + "/d.jsonl", "--examples", "0"])
            XCTAssertEqual(e.status, 0, e.all)
            XCTAssertEqual(e.stderr.contains("sft-dist: note: \(model) has \(adapter) merged into it already (its weights record the merge): the adapter is applied a second time"), twice, e.all)
        }
        // A merge made with relative paths is recognised from another directory.
        XCTAssertEqual(CLI.sftDist(["merge-lora", "--model", "run/model-base", "--adapter", "run/model", "--out", "relative"], cwd: dir).status, 0)
        let e = CLI.sftDist(["eval", "--model", dir + "/relative", "--adapter", adapter, "--data", dir + "/d.jsonl", "--examples", "0"], cwd: "/")
        XCTAssertTrue(e.stderr.contains("has \(adapter) merged into it already"), e.all)
        var stderr = ""
        func lossScores(_ model: [String], _ name: String) throws -> [Double] {
            let r = CLI.mpirun(2, ["select"] + model + ["--data", dir + "/d.jsonl", "--method", "loss", "--keep", "0.5",
                                                        "--out", dir + "/\(name).jsonl"])
            XCTAssertEqual(r.status, 0, r.all)
            stderr = r.stderr
            return try String(contentsOfFile: dir + "/\(name).scores.jsonl", encoding: .utf8).split(separator: "\n").map {
                try XCTUnwrap((try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["loss"] as? Double)
            }
        }
        let withAdapter = try lossScores(["--model", base, "--adapter", adapter], "adapter")
        XCTAssertFalse(stderr.contains("fan_in_fan_out"), stderr)
        // An adapter whose fan_in_fan_out does not match the base's layer: peft sets the field
        // from the layer as it loads (with a warning), and so does sft-dist, with a note, once.
        let flipped = dir + "/flipped"
        try FileManager.default.copyItem(atPath: adapter, toPath: flipped)
        var config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: flipped + "/adapter_config.json"))) as? [String: Any])
        let recorded = try XCTUnwrap(config["fan_in_fan_out"] as? Bool)
        config["fan_in_fan_out"] = !recorded
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: flipped + "/adapter_config.json"))
        XCTAssertEqual(try lossScores(["--model", base, "--adapter", flipped], "flipped"), withAdapter)
        XCTAssertEqual(CLI.occurrences(of: "sft-dist: note: \(flipped)/adapter_config.json: field \"fan_in_fan_out\" is \(!recorded), but \(base) stores its weights", in: stderr), 1, stderr)
        let mergedFlipped = CLI.sftDist(["merge-lora", "--model", base, "--adapter", flipped, "--out", dir + "/merged-flipped"])
        XCTAssertEqual(mergedFlipped.status, 0, mergedFlipped.all)
        XCTAssertTrue(mergedFlipped.stderr.contains("field \"fan_in_fan_out\" is \(!recorded)"), mergedFlipped.all)
        let merged = try lossScores(["--model", dir + "/merged"], "merged")
        let plain = try lossScores(["--model", base], "base")
        XCTAssertEqual(withAdapter.count, 40)
        XCTAssertEqual(withAdapter.count, merged.count)
        XCTAssertLessThanOrEqual(zip(withAdapter, merged).map { abs($0 - $1) }.max() ?? 1, 1e-4)
        XCTAssertGreaterThan(zip(withAdapter, plain).map { abs($0 - $1) }.max() ?? 0, 1e-3, "the adapter changes the scores")
        let refused = CLI.sftDist(["select", "--model", adapter, "--data", dir + "/d.jsonl", "--method", "loss", "--keep", "0.5",
                                   "--out", dir + "/x.jsonl"])
        XCTAssertEqual(refused.status, 1, refused.all)
        XCTAssertTrue(refused.stderr.contains("take it as --model BASE --adapter \(adapter);"), refused.all)

        // tokenize reads the tokenizer only: an adapter directory's, and a model's whose weights are gone.
        try FileManager.default.removeItem(atPath: base + "/model.safetensors")
        for model in [adapter, base, "tiny"] {
            let t = CLI.sftDist(["tokenize", "--model", model, "hi"])
            XCTAssertEqual(t.status, 0, t.all)
            XCTAssertEqual(t.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "[104, 105]", model)
        }
    }

    /// `bench --lora-rank`: the adapters start at zero, so the first loss equals full
    /// fine-tuning's bit for bit; the FLOP count drops the frozen weights' gradient GEMMs.
    func testBenchWithLoRARank() throws {
        func bench(_ extra: [String]) throws -> [String: Any] {
            let r = CLI.sftDist(["bench", "--steps", "1", "--warmup", "0", "--generate-tokens", "0", "--json", "--quiet"] + extra, seconds: 300)
            XCTAssertEqual(r.status, 0, r.all)
            return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        }
        let full = try bench([]), lora = try bench(["--lora-rank", "4"])
        XCTAssertEqual(lora["first_loss"] as? Double, full["first_loss"] as? Double)
        let (pf, pl) = (full["parameters"] as! Int, lora["parameters"] as! Int)
        XCTAssertGreaterThan(pl, pf, "the adapters' parameters are counted")
        XCTAssertLessThan(lora["flops_per_token"] as! Double, 0.8 * (full["flops_per_token"] as! Double))
    }

    /// `bench --lora-rank r --against-full`: both trainers in one process start from the same
    /// base (the same first loss, and the same as a plain `bench` run's), then train different
    /// parameter sets (different last losses); each ratio is that pair's LoRA step ÷ full step.
    func testBenchAgainstFull() throws {
        let r = CLI.sftDist(["bench", "--lora-rank", "4", "--against-full", "--threads", "1", "--steps", "2", "--warmup", "0",
                             "--json", "--quiet"], seconds: 300)
        XCTAssertEqual(r.status, 0, r.all)
        let j = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.all)
        let plain = CLI.sftDist(["bench", "--threads", "1", "--steps", "1", "--warmup", "0", "--generate-tokens", "0", "--json", "--quiet"],
                                seconds: 300)
        let p = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(plain.stdout.utf8)) as? [String: Any], plain.all)
        let first = try XCTUnwrap(p["first_loss"] as? Double)
        XCTAssertEqual(j["lora_first_loss"] as? Double, first)
        XCTAssertEqual(j["full_first_loss"] as? Double, first)
        XCTAssertNotEqual(j["lora_last_loss"] as? Double, j["full_last_loss"] as? Double, "full fine-tuning trains other weights than LoRA")
        let lora = try XCTUnwrap(j["lora_step_s"] as? [Double]), full = try XCTUnwrap(j["full_step_s"] as? [Double])
        let ratios = try XCTUnwrap(j["lora_over_full"] as? [Double])
        XCTAssertEqual(ratios.count, 2)
        for i in 0..<2 { XCTAssertEqual(ratios[i], lora[i] / full[i], accuracy: 1e-4 * ratios[i]) }

        let bad = CLI.sftDist(["bench", "--against-full", "--steps", "1"])
        XCTAssertNotEqual(bad.status, 0, bad.all)
        XCTAssertEqual(CLI.occurrences(of: "--against-full compares LoRA with full fine-tuning: give --lora-rank", in: bad.stderr), 1, bad.all)
    }

    /// GPT-2's Conv1D layout ([in, out] weights, peft's fan_in_fan_out) under real mpirun: the
    /// built-in tiny GPT-2 with adapters on c_attn, c_proj and c_fc, dropout on, gives the
    /// same losses and gradient norms at 1 and 2 ranks.
    func testGPT2LoRAIsRankInvariant() {
        let args = ["train", "--model", "tiny", "--lora-rank", "4", "--lora-dropout", "0.1", "--lora-targets", "c_attn,c_proj,c_fc",
                    "--steps", "4", "--batch-size", "8", "--micro-batch-size", "2", "--lr", "3e-3", "--warmup-steps", "1",
                    "--eval-every", "0", "--eval-examples", "0", "--checksum-every", "2", "--quiet"]
        let rows = CLI.trainingRows(atRanks: [1, 2], args, label: "lora-gpt2")
        XCTAssertEqual(rows[0].count, 4)
        for (i, (one, two)) in zip(rows[0], rows[1]).enumerated() {
            for key in ["loss", "grad_norm"] {
                let a = one[key] ?? .nan, b = two[key] ?? .nan
                XCTAssertEqual(a, b, accuracy: 1e-5 * abs(a), "step \(i + 1) \(key): -n 1 \(a) vs -n 2 \(b)")
            }
        }
    }

    /// The issue's check as it is worded: `sft-dist score --model BASE --adapter DIR` on adapters
    /// peft itself saved gives the completion log-probs peft computes (recorded by
    /// `scripts/make-hf-fixtures record-scores`; observed differences ≤ 5e-6), on the same ids.
    func testScoreWithPeftsOwnAdaptersGivesPeftsLogProbs() throws {
        for name in ["llama", "gpt2"] {
            let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath:
                Self.hf + "/expected/peft-\(name)-by-peft-scores.json"))) as! [String: Any]
            let records = expected["records"] as! [[String: Any]]
            let r = CLI.sftDist(["score", "--model", Self.hf + "/models/" + name, "--adapter", Self.hf + "/peft/\(name)-by-peft",
                                 "--data", Self.data, "--max-length", "32"])
            XCTAssertEqual(r.status, 0, r.all)
            let lines = r.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            XCTAssertEqual(lines.count, records.count, name)
            var worst = 0.0, compared = 0
            for (ours, peft) in zip(lines, records) {
                XCTAssertEqual(ours["ids"] as? [Int], peft["ids"] as? [Int], "\(name): the ids peft was given")
                let a = ours["completion_logprobs"] as? [Double] ?? [], b = peft["completion_logprobs"] as? [Double] ?? []
                XCTAssertEqual(a.count, b.count, name)
                for (x, y) in zip(a, b) { worst = max(worst, abs(x - y)); compared += 1 }
            }
            XCTAssertGreaterThan(compared, 100, name)
            XCTAssertLessThanOrEqual(worst, 1e-4, "\(name): max |score --adapter − peft| over \(compared) log-probs")
        }
    }

    /// A LoRA run's checkpoint holds its adapters in peft's format too (`<checkpoint>/adapter`),
    /// so an intermediate adapter is evaluated like the final one: the last checkpoint's equals
    /// `OUT/model`'s; the checkpoint's `model/` (base and adapters, for resume) points there.
    func testCheckpointAdaptersAreLoadable() {
        let out = CLI.tempDir("lora-ckpt")
        let t = CLI.sftDist(["train", "--model", "tiny", "--steps", "2", "--batch-size", "4", "--micro-batch-size", "2", "--eval-every", "0",
                             "--eval-examples", "0", "--quiet", "--lora-rank", "4", "--save-every", "1", "--out", out])
        XCTAssertEqual(t.status, 0, t.all)
        let heldout = out + "/data/heldout.jsonl"
        func eval(_ adapter: String) -> CLI.Result {
            CLI.sftDist(["eval", "--model", out + "/model-base", "--adapter", adapter, "--data", heldout, "--examples", "4"])
        }
        let final = eval(out + "/model"), last = eval(out + "/checkpoints/step-000002/adapter"), first = eval(out + "/checkpoints/step-000001/adapter")
        XCTAssertEqual(final.status, 0, final.all)
        XCTAssertEqual(last.status, 0, last.all)
        XCTAssertEqual(first.status, 0, first.all)
        XCTAssertEqual(last.stdout, final.stdout)
        XCTAssertNotEqual(first.stdout, final.stdout, "step 1's adapter evaluates as step 2's")
        let model = CLI.sftDist(["eval", "--model", out + "/checkpoints/step-000001/model", "--data", heldout, "--examples", "4"])
        XCTAssertEqual(model.status, 1, model.all)
        XCTAssertTrue(model.stderr.contains("--adapter <checkpoint>/adapter"), model.all)
    }

    /// `--lora-targets` spelled another way for the same adapters (the default spelled out, a
    /// longer path) resumes; other adapters are refused naming the key.
    func testResumeAcceptsAnotherSpellingOfTheSameTargets() {
        let out = CLI.tempDir("lora-spelling")
        let run = ["train", "--model", "tiny", "--steps", "2", "--batch-size", "4", "--micro-batch-size", "2", "--eval-every", "0",
                   "--eval-examples", "0", "--quiet", "--lora-rank", "4", "--save-every", "1", "--out", out]
        let t = CLI.sftDist(run)
        XCTAssertEqual(t.status, 0, t.all)
        let checkpoint = ["--resume", out + "/checkpoints/step-000001"]
        for targets in ["c_attn", "attn.c_attn"] {
            let r = CLI.sftDist(run + checkpoint + ["--lora-targets", targets])
            XCTAssertEqual(r.status, 0, "\(targets): \(r.all)")
        }
        let other = CLI.sftDist(run + checkpoint + ["--lora-targets", "c_attn,c_fc"])
        XCTAssertNotEqual(other.status, 0, other.all)
        XCTAssertTrue(other.stderr.contains("lora_targets"), other.all)
    }

    /// `--lora-rank 0` switches a recipe's LoRA off, `merge_lora` with it: the run still
    /// checked OUT/model-merged as an output and its last line named it, never written.
    func testLoRASwitchedOffMergesNothing() throws {
        let out = CLI.tempDir("lora-off"), recipe = out + "-recipe.yaml"
        try "model: tiny\nsteps: 2\nbatch_size: 4\neval_examples: 0\nlora_rank: 4\nmerge_lora: true\n".write(toFile: recipe, atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try "not a model\n".write(toFile: out + "/model-merged", atomically: true, encoding: .utf8)
        let r = CLI.sftDist(["train", "--config", recipe, "--lora-rank", "0", "--out", out])
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertFalse(r.all.contains("model-merged/"), r.all)
        XCTAssertEqual(try String(contentsOfFile: out + "/model-merged", encoding: .utf8), "not a model\n")
    }

    func testBadLoRAInputIsOneLine() {
        let out = CLI.tempDir("lora-bad")
        for (flags, needle) in [(["--lora-rank", "2", "--lora-targets", "c_attn,q_proj"], "--lora-targets: the gpt2 model has no adaptable module \"q_proj\" (LoRA adapts its block projections: c_attn, c_proj, c_fc)"),
                                (["--lora-rank", "2", "--freeze", "wte"], "--freeze cannot be combined with --lora-rank"),
                                (["--lora-rank", "2", "--lora-targets", "c_attn,,"], "--lora-targets must be comma-separated module names"),
                                // LoRA's other flags without --lora-rank would silently give a full fine-tune.
                                (["--merge-lora"], "--merge-lora needs lora_rank (--lora-rank r) > 0"),
                                (["--lora-targets", "c_attn"], "--lora-targets needs lora_rank (--lora-rank r) > 0")] {
            let r = CLI.mpirun(2, ["train", "--model", "tiny", "--steps", "1", "--out", out + "/run"] + flags, seconds: 60)
            XCTAssertEqual(r.status, 1, r.all)
            XCTAssertTrue(r.stderr.contains(needle), r.all)
            XCTAssertEqual(CLI.occurrences(of: "sft-dist: error", in: r.stderr), 1, r.all)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/run/model"), "\(flags): a model was written")
        }
        let s = CLI.sftDist(["score", "--model", "tiny", "--adapter", out + "/nothing", "--data", Self.data])
        XCTAssertEqual(s.status, 1, s.all)
        XCTAssertTrue(s.stderr.contains("adapter_config.json"), s.all)
        // An adapter for another architecture: the error names the adapter's file, not a flag
        // the user did not give; an adapter directory given as --model says what to do.
        let peft = HFModelCLITests.fixtures + "/peft/"
        for (args, needle) in [(["score", "--model", HFModelCLITests.model("llama"), "--adapter", peft + "gpt2-by-peft"],
                                "gpt2-by-peft/adapter_config.json: target_modules: the llama model has no adaptable module \"c_attn\""),
                               (["eval", "--model", peft + "llama-by-peft"],
                                "llama-by-peft holds a LoRA adapter (adapter_config.json), not a model: eval, score, generate and select take it as --model BASE --adapter"),
                               (["train", "--model", peft + "llama-by-peft", "--steps", "1", "--out", out + "/from-adapter"],
                                "to train from it, merge it into its base first (sft-dist merge-lora --model BASE --adapter \(peft)llama-by-peft --out DIR, then --model DIR)")] {
            let r = CLI.sftDist(args + ["--data", HFModelCLITests.data])
            XCTAssertEqual(r.status, 1, r.all)
            XCTAssertTrue(r.stderr.contains(needle), r.all)
            XCTAssertEqual(CLI.occurrences(of: "sft-dist: error", in: r.stderr), 1, r.all)
        }
        // export has no --adapter: an adapter given to it points to merge-lora, which writes full weights.
        let e = CLI.sftDist(["export", "--model", peft + "llama-by-peft", "--out", out + "/exported"])
        XCTAssertEqual(e.status, 1, e.all)
        XCTAssertTrue(e.stderr.contains("llama-by-peft holds a LoRA adapter (adapter_config.json), not a model: sft-dist merge-lora --model BASE --adapter"), e.all)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/exported"))
    }

    /// LoRA dropout runs in the training forward only: with objectives that divide by another
    /// forward of the policy (sampler, snapshot or reference log-probs) the ratio was not 1
    /// where it must be (on-policy GRPO clipped 16 % of tokens at dropout 0.9). Refused; srft
    /// (no ratio) and the SFT objectives keep it.
    func testLoRADropoutWithARatioObjectiveIsRefused() throws {
        let out = CLI.tempDir("lora-dropout")
        let pairs = out + "/pairs.jsonl"
        try #"{"prompt": "add 1 2 =", "chosen": " 3", "rejected": " 4"}"#.appending("\n").write(toFile: pairs, atomically: true, encoding: .utf8)
        for (objective, extra, against) in [("grpo", ["--reward", "task"], "the sampler's"), ("chord", ["--reward", "task"], "the sampler's"),
                                            ("relift", ["--reward", "task"], "the sampler's"), ("psft", [], "its snapshot's"),
                                            ("spin", [], "its snapshot's"), ("dpo", ["--data", pairs], "the reference's"),
                                            ("srft", ["--reward", "task"], nil), ("nll", [], nil)] {
            let r = CLI.sftDist(["train", "--model", "tiny", "--objective", objective, "--lora-rank", "2", "--lora-dropout", "0.1",
                                 "--dry-run", "--out", out + "/run"] + extra)
            if let against {
                XCTAssertEqual(r.status, 1, "\(objective): \(r.all)")
                // `--resume latest` with no checkpoint yet starts a new run: a new run's checks apply.
                let latest = CLI.sftDist(["train", "--model", "tiny", "--objective", objective, "--lora-rank", "2", "--lora-dropout", "0.1",
                                          "--dry-run", "--out", out + "/run", "--resume", "latest"] + extra)
                XCTAssertEqual(latest.status, 1, "\(objective) with --resume latest: \(latest.all)")
                XCTAssertTrue(r.stderr.contains("--lora-dropout 0.1 with objective \(objective): the training forward would drop adapter inputs that \(against) log-probs did not"), r.all)
            } else {
                XCTAssertEqual(r.status, 0, "\(objective): \(r.all)")
            }
        }
    }

    /// An adapter trained on a preset loads onto that run's OUT/model-base only: the preset's
    /// random weights come from the run's seed, which the adapter does not record (`--model tiny`
    /// gave another base, and merge-lora and score were silently wrong). A merge whose weights
    /// overflow is refused, not written.
    func testAdapterOnAPresetAndAnOverflowingMerge() throws {
        let out = CLI.tempDir("lora-preset")
        let r = CLI.sftDist(["train", "--model", "tiny", "--steps", "2", "--lora-rank", "2", "--eval-examples", "0", "--quiet", "--out", out + "/run"])
        XCTAssertEqual(r.status, 0, r.all)
        for args in [["merge-lora", "--model", "tiny", "--adapter", out + "/run/model", "--out", out + "/m1"],
                     ["score", "--model", "tiny", "--adapter", out + "/run/model", "--data", out + "/run/data/heldout.jsonl"]] {
            let e = CLI.sftDist(args)
            XCTAssertEqual(e.status, 1, e.all)
            XCTAssertEqual(e.stderr, "sft-dist: error: --model tiny is a preset, whose random weights depend on the seed of the run that trained the adapter: give that run's base, OUT/model-base (written beside OUT/model), as --model\n")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/m1"))
        }
        let ok = CLI.sftDist(["merge-lora", "--model", out + "/run/model-base", "--adapter", out + "/run/model", "--out", out + "/m2"])
        XCTAssertEqual(ok.status, 0, ok.all)
        // The adapter with every float set to `value`, merged: refused naming the reason, nothing written.
        try FileManager.default.copyItem(atPath: out + "/run/model", toPath: out + "/big")
        let file = out + "/big/adapter_model.safetensors"
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
        let header = 8 + Int(bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        func refusedMerge(every value: Float, _ reason: String, line: UInt = #line) throws {
            let word = withUnsafeBytes(of: value.bitPattern.littleEndian) { Array($0) }
            for i in stride(from: header, to: bytes.count, by: 4) { bytes.replaceSubrange(i..<i + 4, with: word) }
            try Data(bytes).write(to: URL(fileURLWithPath: file))
            let r = CLI.sftDist(["merge-lora", "--model", out + "/run/model-base", "--adapter", out + "/big", "--out", out + "/m3"])
            XCTAssertEqual(r.status, 1, r.all, line: line)
            XCTAssertTrue(r.stderr.hasPrefix("sft-dist: error: \(out)/big: merged into \(out)/run/model-base, "), r.all, line: line)
            XCTAssertTrue(r.stderr.contains(reason + " (the adapter's tensors or lora_alpha are too large); nothing written"), r.all, line: line)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/m3"), line: line)
        }
        try refusedMerge(every: 1e30, "is not finite")   // B·A overflows
        // B·A finite (≈ 1e30) but past √(Float.max), where the merged model's every product overflows.
        try refusedMerge(every: 1e15, ", past 1.8e19 where products overflow")
    }
}
