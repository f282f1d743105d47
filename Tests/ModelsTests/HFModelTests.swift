import Foundation
import XCTest
@testable import Models
@testable import TensorCore

/// Checkpoints saved by transformers (Fixtures/hf/, made by scripts/make-hf-fixtures) load, give
/// transformers' float32 logits within 1e-5 (observed ≈ 2e-6), and export → reload exactly.
final class HFModelTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/hf").path
    static func model(_ name: String) -> String { root + "/models/" + name }

    var tmp = ""
    override func setUpWithError() throws {
        tmp = NSTemporaryDirectory() + "hf-model-tests-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: tmp) }

    /// Max |ours − transformers| over every logit of every fixture input.
    static func maxLogitError(_ model: LanguageModel, expected name: String) throws -> Float {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.root + "/expected/\(name).json"))) as! [String: Any]
        let inputs = (json["inputs"] as! [[Int]]).map { $0.map(Int32.init) }
        let expected = try SafeTensorsCheckpoint(file: Self.root + "/expected/\(name).safetensors")
        var worst: Float = 0
        for (i, ids) in inputs.enumerated() {
            let logits = model.forward(Tape(recording: false), inputs: ids, batch: 1, seqLen: ids.count)
            let ref = try expected.floats("logits.\(i)")
            XCTAssertEqual(ref.count, logits.count, "\(name) input \(i)")
            for j in 0..<min(ref.count, logits.count) { worst = max(worst, abs(ref[j] - logits.data[j])) }
        }
        return worst
    }

    func testLogitsMatchTransformers() throws {
        for (dir, expected, type) in [("gpt2", "gpt2", GPT2.self as LanguageModel.Type), ("llama", "llama", Llama.self),
                                      ("qwen2", "qwen2", Llama.self), ("qwen3", "qwen3", Llama.self),
                                      ("mistral-sharded", "mistral-sharded", Llama.self)] {
            let (model, _) = try ModelDirectory.load(Self.model(dir))
            XCTAssertTrue(Swift.type(of: model) == type, dir)
            let err = try Self.maxLogitError(model, expected: expected)
            XCTAssertLessThanOrEqual(err, 1e-5, "\(dir): max |logit − transformers| = \(err)")
            print("\(dir): max |logit − transformers| = \(err)")
        }
    }

    func testConfigsAreReadAsTransformersDoes() throws {
        let llama = try ModelDirectory.load(Self.model("llama")).model as! Llama
        XCTAssertEqual(llama.config.kvHeads, 2)
        XCTAssertEqual(llama.config.ropeTheta, 500_000)  // from rope_parameters (transformers ≥ 4.56)
        XCTAssertFalse(llama.config.tieWordEmbeddings)
        XCTAssertNotNil(llama.parameters.entry("lm_head.weight"))
        let qwen = try ModelDirectory.load(Self.model("qwen2")).model as! Llama
        XCTAssertTrue(qwen.config.qkvBias && qwen.config.tieWordEmbeddings && !qwen.config.oBias)
        XCTAssertNil(qwen.parameters.entry("lm_head.weight"))
        XCTAssertNotNil(qwen.parameters.entry("model.layers.1.self_attn.k_proj.bias"))
        let mistral = try ModelDirectory.load(Self.model("mistral-sharded")).model
        XCTAssertEqual(mistral.maxSequenceLength, 8, "context capped at the sliding window")
        let qwen3 = try ModelDirectory.load(Self.model("qwen3")).model as! Llama
        XCTAssertTrue(qwen3.config.qkNorm && !qwen3.config.qkvBias && !qwen3.config.oBias && qwen3.config.tieWordEmbeddings)
        XCTAssertEqual(qwen3.config.headDim, 16, "head_dim read, not hidden_size / heads (8)")
        XCTAssertEqual(qwen3.parameters.entry("model.layers.1.self_attn.k_norm.weight")?.count, 16)
    }

    /// Two documents packed in one row (positions restart, segments separate) give the same
    /// logits as each alone: rotary uses per-document positions and attention never crosses.
    func testLlamaPackedSegmentsEqualSeparateRows() throws {
        let model = try ModelDirectory.load(Self.model("llama")).model
        let a: [Int32] = [5, 70, 9], b: [Int32] = [100, 3, 44, 8, 200]
        let packed = model.forward(Tape(recording: false), inputs: a + b, positions: [0, 1, 2, 0, 1, 2, 3, 4],
                                   segments: [0, 0, 0, 1, 1, 1, 1, 1], batch: 1, seqLen: 8).values
        let alone = model.forward(Tape(recording: false), inputs: b, batch: 1, seqLen: 5).values
        let V = model.vocabSize
        for i in 0..<alone.count { XCTAssertEqual(packed[3 * V + i], alone[i], accuracy: 1e-5) }
    }

    /// export → reload: every parameter bit-identical (bfloat16 → float32 included), the same
    /// tokenizer files, and a config.json that loads to the same architecture.
    func testExportRoundTripIsExact() throws {
        for dir in ["gpt2", "llama", "qwen2", "qwen3", "mistral-sharded"] {
            let (a, tokA) = try ModelDirectory.load(Self.model(dir))
            let out = tmp + "/" + dir
            try ModelDirectory.export(from: Self.model(dir), to: out)
            let (b, tokB) = try ModelDirectory.load(out)
            XCTAssertEqual(a.parameters.entries.map(\.name), b.parameters.entries.map(\.name), dir)
            XCTAssertEqual(memcmp(a.parameters.values, b.parameters.values, a.parameters.count * 4), 0, "\(dir): weights differ")
            let ca = try JSONSerialization.data(withJSONObject: a.configJSON, options: [.sortedKeys])
            let cb = try JSONSerialization.data(withJSONObject: b.configJSON, options: [.sortedKeys])
            XCTAssertEqual(String(decoding: ca, as: UTF8.self), String(decoding: cb, as: UTF8.self), dir)
            XCTAssertEqual(tokA.encode("Hello <|endoftext|> 😀"), tokB.encode("Hello <|endoftext|> 😀"), dir)
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/tokenizer.json"), dir)
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/model.safetensors"), dir)
            if b is Llama {  // weights are written as float32 whatever the source dtype was
                XCTAssertEqual(try HFConfigFields(path: out + "/config.json").string("torch_dtype"), "float32")
            }
        }
    }

    func testExportRefusesItsOwnSource() throws {
        XCTAssertThrowsError(try ModelDirectory.export(from: Self.model("gpt2"), to: Self.model("gpt2") + "/.")) {
            XCTAssertTrue("\($0)".contains("different output directory"), "\($0)")
        }
    }

    // MARK: bad input: one line naming the file and the field

    /// Copies a fixture model, edits its config.json, and returns the load error.
    /// A string value "FLOAT:x" is written as the bare number x (32.0 stays 32.0; JSONSerialization
    /// would write 32).
    func loadError(_ dir: String, edit: (inout [String: Any]) -> Void, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let copy = tmp + "/edited-\(UUID().uuidString)"
        try FileManager.default.copyItem(atPath: Self.model(dir), toPath: copy)
        var cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: copy + "/config.json"))) as! [String: Any]
        edit(&cfg)
        let text = String(decoding: try JSONSerialization.data(withJSONObject: cfg), as: UTF8.self)
            .replacingOccurrences(of: #""FLOAT:([^"]*)""#, with: "$1", options: .regularExpression)
        try text.write(toFile: copy + "/config.json", atomically: true, encoding: .utf8)
        do {
            _ = try ModelDirectory.load(copy)
            XCTFail("loaded despite the edit", file: file, line: line)
            return ""
        } catch {
            let s = "\(error)"
            XCTAssertFalse(s.contains("\n"), s, file: file, line: line)
            return s
        }
    }

    func testBadConfigFieldsAreNamed() throws {
        let cases: [(String, String, (inout [String: Any]) -> Void)] = [
            ("llama", "field \"rope_parameters\" rope_type \"llama3\"", { $0["rope_parameters"] = ["rope_type": "llama3", "rope_theta": 5e5] }),
            ("llama", "field \"rope_scaling\" rope_type \"linear\"", { $0["rope_scaling"] = ["type": "linear", "factor": 2.0] }),
            ("llama", "field \"num_key_value_heads\" (3) must divide", { $0["num_key_value_heads"] = 3 }),
            ("llama", "field \"hidden_act\" \"gelu\"", { $0["hidden_act"] = "gelu" }),
            ("llama", "field \"hidden_size\" must be an integer, got \"32\"", { $0["hidden_size"] = "32" }),
            ("llama", "field \"tie_word_embeddings\" must be true or false, got 1", { $0["tie_word_embeddings"] = 1 }),
            ("llama", "field \"num_hidden_layers\" is missing", { $0["num_hidden_layers"] = nil }),
            ("qwen2", "field \"model_type\" is \"falcon\"", { $0["model_type"] = "falcon" }),
            ("gpt2", "field \"activation_function\" \"relu\"", { $0["activation_function"] = "relu" }),
            ("gpt2", "field \"n_inner\" must be null or 4·n_embd", { $0["n_inner"] = 100 }),
            // layer_types as transformers 5 validates it (a misspelt kind turned a window off, an
            // entry past the last layer turned one on).
            ("qwen3", "field \"layer_types\" entry 1 is \"Sliding_Attention\", not one of full_attention, sliding_attention",
             { $0["layer_types"] = ["full_attention", "Sliding_Attention"]; $0["use_sliding_window"] = true; $0["sliding_window"] = 8 }),
            ("qwen3", "field \"layer_types\" has 3 entries for num_hidden_layers 2",
             { $0["layer_types"] = ["full_attention", "full_attention", "sliding_attention"]; $0["use_sliding_window"] = true; $0["sliding_window"] = 8 }),
            ("qwen2", "field \"layer_types\" has 0 entries", { $0["layer_types"] = [String]() }),
            ("qwen2", "field \"layer_types\" must be a list", { $0["layer_types"] = "full_attention" }),
            ("qwen2", "field \"layer_types\" entry 0 is not a string", { $0["layer_types"] = [1, 2] }),
            // A hostile review: accepted where transformers fails (null activation; sizes that
            // Python's json reads as floats), or refused naming the wrong field.
            ("llama", "field \"hidden_act\" must be a string, got null", { $0["hidden_act"] = NSNull() }),
            ("gpt2", "field \"activation_function\" must be a string, got null", { $0["activation_function"] = NSNull() }),
            ("llama", "field \"hidden_size\" must be an integer, got 32.0", { $0["hidden_size"] = "FLOAT:32.0" }),
            ("qwen2", "field \"num_attention_heads\" must be an integer, got 4.0", { $0["num_attention_heads"] = "FLOAT:4e0" }),
            ("mistral-sharded", "field \"sliding_window\" must be ≥ 2, got 1", { $0["sliding_window"] = 1 }),
            ("llama", "field \"model_type\" is missing", { $0["model_type"] = nil }),
            ("llama", "field \"model_type\" must be a string, got 5", { $0["model_type"] = 5 }),
            // A list or an object as cut JSON (it was Swift's ["x": <null>] and a whole config long).
            ("llama", "field \"hidden_size\" must be an integer, got an object {\"x\":null,\"y\":[1,{\"z\":2}]}",
             { $0["hidden_size"] = ["x": NSNull(), "y": [1, ["z": 2]]] }),
            ("llama", "field \"hidden_size\" must be an integer, got a list [\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa…",
             { $0["hidden_size"] = [String(repeating: "a", count: 500)] }),
            // float32's range: inf was written back as "inf" (not JSON); a tiny theta gave NaN
            // rotary tables (the loss NaN, nothing named); an eps that rounds to 0 divided by 0.
            // (The fixtures give theta in rope_parameters, which wins over a top-level rope_theta.)
            ("llama", "field \"rope_theta\" is 1e+39, beyond float32's range", { $0["rope_theta"] = "FLOAT:1e39"; $0["rope_parameters"] = nil }),
            ("llama", "field \"rope_theta\" is 1e-42, too small", { $0["rope_theta"] = "FLOAT:1e-42"; $0["rope_parameters"] = nil }),
            ("llama", "field \"rope_theta\" is 1e-37, too small",
             { $0["rope_theta"] = "FLOAT:1e-37"; $0["rope_parameters"] = nil; $0["head_dim"] = 64; $0["max_position_embeddings"] = 4096 }),
            ("qwen2", "field \"rope_parameters.rope_theta\" is 1e-42, too small",
             { $0["rope_parameters"] = ["rope_type": "default", "rope_theta": "FLOAT:1e-42"] }),
            ("llama", "field \"rms_norm_eps\" must be > 0 and a normal float32", { $0["rms_norm_eps"] = "FLOAT:1e-50" }),
            ("gpt2", "field \"layer_norm_epsilon\" must be > 0 and a normal float32", { $0["layer_norm_epsilon"] = "FLOAT:1e-50" }),
        ]
        for (dir, fragment, edit) in cases {
            let e = try loadError(dir, edit: edit)
            XCTAssertTrue(e.contains("config.json: " + fragment), "expected \"\(fragment)\" in: \(e)")
        }
    }

    func testArchitectureMismatchNamesTheTensor() throws {
        // More layers than the checkpoint has: the first missing tensor is named.
        let e = try loadError("llama") { $0["num_hidden_layers"] = 3 }
        XCTAssertTrue(e.contains("no tensor \"model.layers.2.input_layernorm.weight\""), e)
        // Untied head expected but the qwen2 checkpoint is tied.
        let f = try loadError("qwen2") { $0["tie_word_embeddings"] = false }
        XCTAssertTrue(f.contains("no tensor \"lm_head.weight\""), f)
        // A different intermediate size: shape mismatch names the tensor and both shapes.
        let g = try loadError("llama") { $0["intermediate_size"] = 50 }
        XCTAssertTrue(g.contains("tensor \"model.layers.0.mlp.gate_proj.weight\" has shape [48, 32] but the config needs [50, 32]"), g)
    }

    /// A checkpoint tensor the config has no place for is refused, naming it (a hostile
    /// review found each dropped silently): fewer layers than the weights, Qwen2 weights read
    /// as Llama (q/k/v biases), a tied config over a checkpoint whose lm_head differs.
    func testCheckpointTensorsTheConfigWouldDropAreRefused() throws {
        let a = try loadError("llama") { $0["num_hidden_layers"] = 1 }
        XCTAssertTrue(a.contains("checkpoint tensor \"model.layers.1."), a)
        XCTAssertTrue(a.contains("is not a parameter of the model config.json describes"), a)
        let b = try loadError("qwen2") { $0["model_type"] = "llama" }
        XCTAssertTrue(b.contains("checkpoint tensor \"model.layers.0.self_attn.") && b.contains("_proj.bias\""), b)
        let c = try loadError("llama") { $0["tie_word_embeddings"] = true }
        XCTAssertTrue(c.contains("tensor \"lm_head.weight\" differs from the embeddings model.embed_tokens.weight"), c)
        let d = try loadError("gpt2") { $0["n_layer"] = 1 }
        XCTAssertTrue(d.contains("checkpoint tensor \"") && d.contains("h.1."), d)
    }

    /// transformers' Qwen2 slides only in the layers layer_types (or max_window_layers) marks:
    /// a window in config.json with every layer full attention does not cap the context.
    func testQwen2SlidingWindowFollowsTheLayerTypes() throws {
        func context(_ edit: ([String: Any]) -> [String: Any]) throws -> Int {
            let copy = tmp + "/window-\(UUID().uuidString)"
            try FileManager.default.copyItem(atPath: Self.model("qwen2"), toPath: copy)
            let cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: copy + "/config.json"))) as! [String: Any]
            try JSONSerialization.data(withJSONObject: edit(cfg)).write(to: URL(fileURLWithPath: copy + "/config.json"))
            return try ModelDirectory.load(copy).0.maxSequenceLength
        }
        func window(_ c: [String: Any]) -> [String: Any] { var c = c; c["use_sliding_window"] = true; c["sliding_window"] = 4; return c }
        XCTAssertEqual(try context { $0 }, 64)
        XCTAssertEqual(try context(window), 64, "every layer full_attention")
        XCTAssertEqual(try context { var c = window($0); c["layer_types"] = ["full_attention", "sliding_attention"]; return c }, 4)
        XCTAssertEqual(try context { var c = window($0); c["layer_types"] = nil; return c }, 64, "2 layers < max_window_layers 28")
        XCTAssertEqual(try context { var c = window($0); c["layer_types"] = nil; c["max_window_layers"] = 1; return c }, 4)
    }

    func testTruncatedShardIsRejectedWithItsOwnMessage() throws {
        let copy = tmp + "/trunc"
        try FileManager.default.copyItem(atPath: Self.model("mistral-sharded"), toPath: copy)
        let shard = copy + "/model-00003-of-00005.safetensors"
        let data = try Data(contentsOf: URL(fileURLWithPath: shard))
        try data.prefix(data.count - 4).write(to: URL(fileURLWithPath: shard))
        XCTAssertThrowsError(try ModelDirectory.load(copy)) { e in
            XCTAssertTrue("\(e)".contains("model-00003-of-00005.safetensors"), "\(e)")
        }
    }
}
