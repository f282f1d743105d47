import Foundation
import XCTest
@testable import Models
@testable import TensorCore

/// A config.json's dropout (GPT-2's resid/embd/attn_pdrop, the Llama family's
/// attention_dropout): sft-dist trains without it, says so (`dropoutNote`), and writes the
/// values back as it read them — it wrote 0, so a model continued in transformers lost its
/// dropout. And the byte tokenizer's HF save names `<|im_end|>` an eos in
/// generation_config.json, where transformers' generate ran past every turn's end.
final class ConfigDropoutTests: XCTestCase {
    static let models = HFModelTests.root + "/models/"

    /// A copy of fixture `name` with `edit` applied to its config.json.
    func copy(_ name: String, edit: (inout [String: Any]) -> Void) throws -> String {
        let dir = NSTemporaryDirectory() + "dropout-\(name)-\(UUID().uuidString)"
        try FileManager.default.copyItem(atPath: Self.models + name, toPath: dir)
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/config.json"))) as! [String: Any]
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: dir + "/config.json"))
        return dir
    }

    func savedConfig(_ model: LanguageModel, _ tokenizer: Tokenizer) throws -> [String: Any] {
        let out = NSTemporaryDirectory() + "dropout-saved-\(UUID().uuidString)"
        try ModelDirectory.save(model, tokenizer: tokenizer, to: out, format: .hf)
        return try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/config.json"))) as! [String: Any]
    }

    func testGPT2DropoutIsKeptAndNoted() throws {
        // Given, and left out (transformers' GPT2Config default: 0.1).
        let given = try copy("gpt2") { $0["resid_pdrop"] = 0.2; $0["embd_pdrop"] = 0.0; $0["attn_pdrop"] = 0.1 }
        let absent = try copy("gpt2") { c in for k in GPT2Config.dropoutKeys { c[k] = nil } }
        for (dir, want) in [(given, [0.2, 0.0, 0.1]), (absent, [0.1, 0.1, 0.1])] {
            let (model, tokenizer) = try ModelDirectory.load(dir)
            let saved = try savedConfig(model, tokenizer)
            XCTAssertEqual(GPT2Config.dropoutKeys.map { saved[$0] as? Double }, want)
            XCTAssertEqual(model.dropoutNote?.hasPrefix("config.json sets attn_pdrop 0.1, "), true, model.dropoutNote ?? "nil")
        }
        XCTAssertEqual(try ModelDirectory.load(given).model.dropoutNote?.contains("embd_pdrop"), false, "a dropout of 0 is not one")
        // The fixture (0 each) and a preset: nothing to say, 0 written.
        let (plain, tok) = try ModelDirectory.load(Self.models + "gpt2")
        XCTAssertNil(plain.dropoutNote)
        XCTAssertEqual(try savedConfig(plain, tok)["resid_pdrop"] as? Double, 0)
        let preset = GPT2(config: try XCTUnwrap(ModelPresets.named("tiny", vocabSize: 260)))
        XCTAssertNil(preset.dropoutNote)
        XCTAssertEqual(try savedConfig(preset, ByteTokenizer())["attn_pdrop"] as? Double, 0)
    }

    func testLlamaAttentionDropoutIsKeptAndNoted() throws {
        let dir = try copy("llama") { $0["attention_dropout"] = 0.1 }
        let (model, tokenizer) = try ModelDirectory.load(dir)
        XCTAssertEqual(model.dropoutNote?.hasPrefix("config.json sets attention_dropout 0.1, and sft-dist trains without dropout"), true, model.dropoutNote ?? "nil")
        XCTAssertEqual(try savedConfig(model, tokenizer)["attention_dropout"] as? Double, 0.1)
        XCTAssertNil(try ModelDirectory.load(Self.models + "llama").model.dropoutNote)
    }

    /// The byte tokenizer's ChatML turns end with `<|im_end|>`: an HF save lists it beside
    /// `<|endoftext|>` in generation_config.json; a native save writes none, and neither does a
    /// tokenizer that recorded another template (its turns do not end so).
    func testAByteTokenizerHFSaveStopsAtTheEndOfATurn() throws {
        let preset = GPT2(config: try XCTUnwrap(ModelPresets.named("tiny", vocabSize: 260)))
        func saved(_ format: ModelDirectory.SaveFormat, _ tokenizer: ByteTokenizer) throws -> [String: Any]? {
            let out = NSTemporaryDirectory() + "turn-ends-\(UUID().uuidString)"
            try ModelDirectory.save(preset, tokenizer: tokenizer, to: out, format: format)
            return try GenerationConfig.read(directory: out)?.json
        }
        XCTAssertEqual(try saved(.hf, ByteTokenizer())?["eos_token_id"] as? [Int], [Int(ByteTokenizer.endOfText), Int(ByteTokenizer.imEnd)])
        XCTAssertNil(try saved(.native, ByteTokenizer()))
        let plain = ByteTokenizer()
        plain.recordChatTemplate("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}")
        XCTAssertNil(try saved(.hf, plain))
    }

    /// A directory of PyTorch pickles says what it holds and how to convert it.
    func testAPickleDirectoryIsNamed() throws {
        let dir = NSTemporaryDirectory() + "torch-dir-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        XCTAssertThrowsError(try SafeTensorsCheckpoint(directory: dir)) { XCTAssertFalse("\($0)".contains("pickle"), "\($0)") }
        try Data([0x80, 0x02]).write(to: URL(fileURLWithPath: dir + "/pytorch_model.bin"))
        XCTAssertThrowsError(try SafeTensorsCheckpoint(directory: dir)) {
            XCTAssertTrue("\($0)".contains("directory has neither model.safetensors nor model.safetensors.index.json (it holds pytorch_model.bin, PyTorch's pickle format, which sft-dist does not read: convert it with transformers"), "\($0)")
        }
    }
}
