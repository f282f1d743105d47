import Foundation
import XCTest
import Models
import TensorCore
@testable import Training

/// Adapters and peft, both ways (`scripts/make-hf-fixtures peft-adapters` / `record-adapter`,
/// Fixtures/hf/peft/ + expected/peft-*): adapters peft itself saved load here and give peft's
/// logits; an adapter sft-dist wrote in training gives, in peft, the logits sft-dist computes,
/// and today's writer still writes its names, shapes and config. peft loads adapters with
/// strict=False, so every case also checks that the adapter changes the base's logits.
final class LoRAFixtureTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../ModelsTests/Fixtures/hf").standardizedFileURL.path

    /// Max |ours − peft| over every logit of the recorded inputs, and max |ours − base|.
    func compare(_ model: LanguageModel, base: LanguageModel, expected name: String) throws -> (error: Float, change: Float) {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.root + "/expected/\(name).json"))) as! [String: Any]
        let inputs = (json["inputs"] as! [[Int]]).map { $0.map(Int32.init) }
        let expected = try SafeTensorsCheckpoint(file: Self.root + "/expected/\(name).safetensors")
        var worst: Float = 0, change: Float = 0
        for (i, ids) in inputs.enumerated() {
            let ours = model.forward(Tape(recording: false), inputs: ids, batch: 1, seqLen: ids.count)
            let plain = base.forward(Tape(recording: false), inputs: ids, batch: 1, seqLen: ids.count)
            let ref = try expected.floats("logits.\(i)")
            XCTAssertEqual(ref.count, ours.count)
            for j in 0..<min(ref.count, ours.count) {
                worst = max(worst, abs(ref[j] - ours.data[j]))
                change = max(change, abs(plain.data[j] - ours.data[j]))
            }
        }
        return (worst, change)
    }

    func check(base: String, adapter: String, expected: String, at directory: String? = nil) throws {
        let (model, _) = try AdapterDirectory.loadModel(base: Self.root + "/models/" + base, adapter: directory ?? Self.root + "/peft/" + adapter)
        let (plain, _) = try ModelDirectory.load(Self.root + "/models/" + base)
        let r = try compare(model, base: plain, expected: expected)
        print("\(adapter): max |sft-dist − peft| = \(r.error), adapter changes logits by up to \(r.change)")
        XCTAssertLessThanOrEqual(r.error, 1e-4, adapter)
        XCTAssertGreaterThan(r.change, 0.1, "\(adapter) does nothing")
        // Merged into the base (merge-lora), the same logits.
        let merged = try compare(LoRAMerge.merged(model as! LoRAAdaptable), base: plain, expected: expected)
        XCTAssertLessThanOrEqual(merged.error, 1e-4, "\(adapter) merged")
    }

    func testAdaptersMadeByPeftGivePeftsLogits() throws {
        try check(base: "gpt2", adapter: "gpt2-by-peft", expected: "peft-gpt2-by-peft")
        try check(base: "llama", adapter: "llama-by-peft", expected: "peft-llama-by-peft")
    }

    /// peft sets `fan_in_fan_out` from the layer as it loads an adapter (with a warning), so an
    /// adapter whose field does not match gives in peft the logits of the same adapter with it
    /// right (checked with peft 0.21: max difference 0.0 both ways): read so here, with a note.
    func testAMismatchedFanInFanOutIsReadAsPeftReadsIt() throws {
        let tmp = NSTemporaryDirectory() + "sft-dist-fan-in-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        for (base, adapter, recorded) in [("gpt2", "gpt2-by-peft", false), ("llama", "llama-by-peft", true)] {
            let dir = tmp + "/" + adapter, baseDir = Self.root + "/models/" + base
            try? FileManager.default.removeItem(atPath: dir)
            try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: Self.root + "/peft/" + adapter, toPath: dir)
            let (model, _) = try AdapterDirectory.loadModel(base: baseDir, adapter: Self.root + "/peft/" + adapter)
            XCTAssertNil(AdapterDirectory.fanInFanOutNote(adapter: Self.root + "/peft/" + adapter, base: baseDir, model: model))
            var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/adapter_config.json"))) as! [String: Any]
            XCTAssertEqual(config["fan_in_fan_out"] as? Bool, !recorded)
            config["fan_in_fan_out"] = recorded
            try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: dir + "/adapter_config.json"))
            try check(base: base, adapter: adapter, expected: "peft-" + adapter, at: dir)
            let layer = recorded ? "as nn.Linear" : "as Conv1D"
            XCTAssertEqual(AdapterDirectory.fanInFanOutNote(adapter: dir, base: baseDir, model: model),
                           "\(dir)/adapter_config.json: field \"fan_in_fan_out\" is \(recorded), but \(baseDir) stores its weights \(layer): read as \(!recorded), as peft does (it sets the field from the layer, with a warning)")
        }
    }

    /// LoRA reward models peft saved (task_type SEQ_CLS: the score head in modules_to_save, as
    /// TRL's RewardTrainer recommends) on the causal GPT-2 (Conv1D) and Llama: loaded onto their
    /// causal base, the rewards peft computed (`scripts/make-hf-fixtures peft-reward-adapters`);
    /// merged, the same; re-saved, the same tensors and peft's SEQ_CLS config.
    func testRewardAdaptersMadeByPeftGivePeftsRewards() throws {
        for base in ["gpt2", "llama"] {
            let dir = Self.root + "/peft/\(base)-reward-by-peft"
            let (model, tokenizer) = try AdapterDirectory.loadModel(base: Self.root + "/models/" + base, adapter: dir, rewardModels: true)
            XCTAssertTrue(model.scoresSequences, base)
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.root + "/expected/peft-\(base)-reward-by-peft.json"))) as! [String: Any]
            XCTAssertEqual(ModelDirectory.rewardPadId(model).map(Int.init), json["pad_token_id"] as? Int, "\(base): the pad TRL sets")
            XCTAssertEqual(tokenizer.padId, ModelDirectory.rewardPadId(model))
            let texts = json["texts"] as! [[String: Any]]
            XCTAssertEqual(texts.count, 5)
            let merged = LoRAMerge.merged(model as! LoRAAdaptable)
            for t in texts {
                let ids = (t["ids"] as! [Int]).map(Int32.init), expected = t["reward"] as! Double
                for (label, m) in [("adapter", model), ("merged", merged)] {
                    let r = RewardModelScorer.rewards([ids][...], model: m, pad: ModelDirectory.rewardPadId(m))[0]
                    XCTAssertEqual(Double(r), expected, accuracy: 1e-5 * max(1, abs(expected)), "\(base) \(label): \(t["text"]!)")
                }
            }
            let again = NSTemporaryDirectory() + "reward-adapter-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: again) }
            try AdapterDirectory.save(model as! LoRAAdaptable, base: "b", to: again)
            let a = try SafeTensorsCheckpoint(file: dir + "/adapter_model.safetensors"), b = try SafeTensorsCheckpoint(file: again + "/adapter_model.safetensors")
            XCTAssertEqual(a.names.sorted(), b.names.sorted())
            XCTAssertTrue(b.names.contains("base_model.model.score.weight"), base)
            for n in a.names { XCTAssertEqual(try a.floats(n), try b.floats(n), n) }
            let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: again + "/adapter_config.json"))) as! [String: Any]
            XCTAssertEqual(config["task_type"] as? String, "SEQ_CLS")
            XCTAssertEqual(config["modules_to_save"] as? [String], ["classifier", "score"])
        }
    }

    /// peft without a task_type (`LoraConfig(modules_to_save=["score"])`, which TRL's RewardTrainer
    /// recommends) saves the same tensors: a reward model's adapter, read with the same rewards;
    /// a causal LM's without a task_type and with other saved modules is refused as before; a
    /// reward model's adapter is refused where a causal LM is needed.
    func testRewardAdaptersWithoutATaskType() throws {
        let tmp = NSTemporaryDirectory() + "reward-adapter-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        try FileManager.default.copyItem(atPath: Self.root + "/peft/gpt2-reward-by-peft", toPath: tmp)
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp + "/adapter_config.json"))) as! [String: Any]
        config["task_type"] = NSNull(); config["modules_to_save"] = ["score"]
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: tmp + "/adapter_config.json"))
        let base = Self.root + "/models/gpt2"
        let (model, _) = try AdapterDirectory.loadModel(base: base, adapter: tmp, rewardModels: true)
        XCTAssertTrue(model.scoresSequences)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.root + "/expected/peft-gpt2-reward-by-peft.json"))) as! [String: Any]
        let first = (json["texts"] as! [[String: Any]])[0]
        let r = RewardModelScorer.rewards([(first["ids"] as! [Int]).map(Int32.init)][...], model: model, pad: ModelDirectory.rewardPadId(model))[0]
        XCTAssertEqual(Double(r), first["reward"] as! Double, accuracy: 1e-5)
        XCTAssertThrowsError(try AdapterDirectory.loadModel(base: base, adapter: tmp)) {
            XCTAssertTrue("\($0)".hasSuffix("holds a reward model's adapter (task_type SEQ_CLS, or modules_to_save with score), which scores whole sequences; this needs a causal language model's (sft-dist score prints its rewards, merge-lora writes the whole reward model)"), "\($0)")
        }
        try? FileManager.default.removeItem(atPath: tmp)
        try FileManager.default.copyItem(atPath: Self.root + "/peft/gpt2-by-peft", toPath: tmp)
        config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp + "/adapter_config.json"))) as! [String: Any]
        config["task_type"] = NSNull(); config["modules_to_save"] = ["lm_head"]
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: tmp + "/adapter_config.json"))
        XCTAssertThrowsError(try AdapterDirectory.loadModel(base: base, adapter: tmp)) {
            XCTAssertEqual("\($0)", "\(tmp)/adapter_config.json: field \"modules_to_save\" must be null (not supported)")
        }
    }

    /// Trained by sft-dist (`train --model models/{llama,gpt2} --lora-rank 4 --lora-targets <all
    /// projections>` under mpirun -n 2, recorded with record-adapter): peft's logits equal ours,
    /// and re-saving it with today's writer gives the same tensors and config fields.
    func testAdaptersSftDistTrainedLoadInPeftWithTheSameLogits() throws {
        try checkTrained("llama")
        try checkTrained("gpt2")
    }

    func checkTrained(_ base: String) throws {
        let dir = Self.root + "/peft/\(base)-sft-dist"
        try check(base: base, adapter: "\(base)-sft-dist", expected: "peft-\(base)-sft-dist")
        let (model, _) = try AdapterDirectory.loadModel(base: Self.root + "/models/" + base, adapter: dir)
        let again = NSTemporaryDirectory() + "lora-fixture-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: again) }
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/adapter_config.json"))) as! [String: Any]
        try AdapterDirectory.save(model as! LoRAAdaptable, base: config["base_model_name_or_path"] as! String, to: again)
        let a = try SafeTensorsCheckpoint(file: dir + "/adapter_model.safetensors"), b = try SafeTensorsCheckpoint(file: again + "/adapter_model.safetensors")
        XCTAssertEqual(a.names.sorted(), b.names.sorted())
        for n in a.names { XCTAssertEqual(try a.floats(n), try b.floats(n), n) }
        let c2 = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: again + "/adapter_config.json"))) as! [String: Any]
        for key in ["peft_type", "r", "lora_alpha", "target_modules", "fan_in_fan_out", "bias", "task_type", "base_model_name_or_path"] {
            XCTAssertEqual("\(config[key] ?? "missing")", "\(c2[key] ?? "missing")", key)
        }
    }

    func testBadAdaptersAreRefusedNamingTheFieldOrTensor() throws {
        let tmp = NSTemporaryDirectory() + "lora-bad-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        func variant(_ edit: (inout [String: Any]) -> Void, tensors: Bool = true) throws -> String {
            try? FileManager.default.removeItem(atPath: tmp)
            try FileManager.default.copyItem(atPath: Self.root + "/peft/gpt2-by-peft", toPath: tmp)
            var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp + "/adapter_config.json"))) as! [String: Any]
            edit(&config)
            try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: tmp + "/adapter_config.json"))
            do { _ = try AdapterDirectory.loadModel(base: Self.root + "/models/gpt2", adapter: tmp, rewardModels: true); return "accepted" } catch { return "\(error)" }
        }
        let config = tmp + "/adapter_config.json"
        XCTAssertEqual(try variant { $0["use_dora"] = true }, "\(config): field \"use_dora\" must be false")
        // PiSSA and its kin change the base as peft loads them: refused, not added to the plain base.
        for initial: Any in ["pissa", "pissa_niter_4", "olora", "corda", "loftq", 2] {
            let shown = (initial as? String).map { "\"\($0)\"" } ?? "\(initial)"
            XCTAssertEqual(try variant { $0["init_lora_weights"] = initial },
                           "\(config): field \"init_lora_weights\" is \(shown): an adapter whose initialisation changes the base weights as peft loads it (PiSSA, OLoRA, CorDA, LoftQ) is not supported; true, false, \"gaussian\", \"orthogonal\" and \"eva\" are")
        }
        for initial: Any in [false, true, "gaussian", "orthogonal", "eva", NSNull()] {
            XCTAssertEqual(try variant { $0["init_lora_weights"] = initial }, "accepted", "\(initial)")
        }
        // peft's pickled weights (safe_serialization=False) are named as such.
        _ = try variant { _ in }
        try FileManager.default.moveItem(atPath: tmp + "/adapter_model.safetensors", toPath: tmp + "/adapter_model.bin")
        XCTAssertThrowsError(try AdapterDirectory.loadModel(base: Self.root + "/models/gpt2", adapter: tmp)) {
            XCTAssertEqual("\($0)", "\(tmp)/adapter_model.bin: peft's pickle format is not read; save the adapter as safetensors (peft's default, safe_serialization=True) to get adapter_model.safetensors")
        }
        // A dropout outside [0, 1) was read as given (peft's LoraConfig refuses it).
        for bad in [-1.0, 5.0] {
            XCTAssertEqual(try variant { $0["lora_dropout"] = bad }, "\(config): field \"lora_dropout\" must be in [0, 1), got \(bad)")
        }
        // α in --lora-alpha's range (1e18 was merged into weights of 1e14), layers_pattern null
        // as peft writes it, a long module name cut.
        for bad in [1e18, 0, -2] {
            XCTAssertEqual(try variant { $0["lora_alpha"] = bad }, "\(config): field \"lora_alpha\" must be a number in (0, 1000000.0], got \(bad)")
        }
        XCTAssertEqual(try variant { $0["layers_pattern"] = "none" }, "\(config): field \"layers_pattern\" must be null (not supported)")
        XCTAssertTrue(try variant { $0["target_modules"] = ["c_attn", String(repeating: "a", count: 5000)] }.count < 400)
        XCTAssertEqual(try variant { $0["peft_type"] = "IA3" }, "\(config): field \"peft_type\" is \"IA3\"; only LORA adapters are supported")
        XCTAssertEqual(try variant { $0["target_modules"] = ["c_attn", "q_proj"] },
                       "\(config): target_modules: the gpt2 model has no adaptable module \"q_proj\" (LoRA adapts its block projections: c_attn, c_proj, c_fc) (an adapter made for another model than \(Self.root)/models/gpt2?)")
        // Fewer targets than the file holds: the extra tensors are named, not ignored as peft would.
        XCTAssertTrue(try variant { $0["target_modules"] = ["c_attn"] }.contains("is not an adapter of this model"))
        XCTAssertEqual(try variant { $0["r"] = 5 },
                       "\(tmp)/adapter_model.safetensors: tensor \"base_model.model.transformer.h.0.attn.c_attn.lora_A.weight\" has shape [4, 32], the model needs [5, 32]")
        // The right rank but other features: an adapter of another model (Llama's on Qwen2, whose
        // MLP is wider), said as such — the names and the config alone gave no sign of it.
        XCTAssertEqual(try variant { $0["task_type"] = "SEQ_2_SEQ_LM" },
                       "\(config): field \"task_type\" is \"SEQ_2_SEQ_LM\"; an adapter of a causal LM (CAUSAL_LM) or a reward model (SEQ_CLS) is supported")
        XCTAssertEqual(try variant { $0["modules_to_save"] = ["lm_head"]; $0["task_type"] = "SEQ_CLS" },
                       "\(config): field \"modules_to_save\" must be null or list \"score\" and at most \"classifier\" beside it (a reward model's head)")
        XCTAssertEqual(try variant { $0["modules_to_save"] = ["embed_tokens"]; $0["task_type"] = "CAUSAL_LM" },
                       "\(config): field \"modules_to_save\" must be null (not supported)")
        // A reward model's adapter must hold the head it trained.
        XCTAssertEqual(try variant { $0["task_type"] = "SEQ_CLS" }, "\(tmp)/adapter_model.safetensors: no tensor \"base_model.model.score.weight\"")
        let qwen = Self.root + "/models/qwen2", llamaAdapter = Self.root + "/peft/llama-by-peft"
        var message = ""
        do { _ = try AdapterDirectory.loadModel(base: qwen, adapter: llamaAdapter) } catch { message = "\(error)" }
        XCTAssertTrue(message.contains("has shape [") && message.hasSuffix(" (an adapter made for another model than \(qwen)?)"), message)
    }
}
