import Foundation
import XCTest
import TestSupport
import Models
import TensorCore
@testable import Training

/// `sft-dist merge`: the written tensors are the weighted sum of the inputs', and models of
/// another config or tokenizer are refused, naming the field.
final class ModelMergeTests: XCTestCase {
    var dir: String!
    override func setUpWithError() throws {
        dir = try makeTemporaryDirectory("sft-dist-merge")
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func save(_ name: String, seed: UInt64, layers: Int = 2, format: ModelDirectory.SaveFormat = .native) throws -> (String, [Float]) {
        let tokenizer = ByteTokenizer()
        let model = GPT2(config: GPT2Config(vocabSize: tokenizer.vocabSize, contextLength: 16, embedDim: 8, layers: layers, heads: 2), seed: seed)
        let path = dir + "/" + name
        try ModelDirectory.save(model, tokenizer: tokenizer, to: path, format: format)
        return (path, Array(UnsafeBufferPointer(start: model.parameters.values, count: model.parameters.count)))
    }

    func testMergedTensorsAreTheWeightedSum() throws {
        let (a, va) = try save("a", seed: 1), (b, vb) = try save("b", seed: 2), (c, vc) = try save("c", seed: 3)
        let weights = [0.2, 0.5, 0.3]
        _ = try ModelMerge.merge([a, b, c], weights: weights, to: dir + "/soup")
        let (merged, _) = try ModelDirectory.load(dir + "/soup")
        let p = merged.parameters
        var worst: Float = 0
        for e in p.entries {
            for i in e.offset..<(e.offset + e.count) {
                let expected = Float(0.2) * va[i] + Float(0.5) * vb[i] + Float(0.3) * vc[i]
                worst = max(worst, abs(p.values[i] - expected))
            }
        }
        XCTAssertLessThan(worst, 1e-6)
        // Default weights: the uniform soup; two models at 1/2 each.
        _ = try ModelMerge.merge([a, b], weights: nil, to: dir + "/half")
        let (half, _) = try ModelDirectory.load(dir + "/half")
        let e = try XCTUnwrap(half.parameters.entry("transformer.h.1.mlp.c_fc.weight"))
        for i in e.offset..<(e.offset + e.count) {
            XCTAssertEqual(half.parameters.values[i], (va[i] + vb[i]) / 2, accuracy: 1e-7)
        }
    }

    /// WiSE-FT's case: a Hugging Face base and an sft-dist fine-tune of it. sft-dist writes the
    /// base's config in its own spelling (no `dtype`, `rope_theta` for `rope_parameters`), so
    /// the configs are compared as loaded, not as files.
    func testHuggingFaceBaseMergesWithItsFineTune() throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../ModelsTests/Fixtures/hf/models/llama").standardized.path
        try mergeWithFineTune(base: fixture)
        // A base whose config.json has no bos/eos ids: saving the fine-tune fills them in.
        let bare = dir + "/bare-base"
        try FileManager.default.copyItem(atPath: fixture, toPath: bare)
        var config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: bare + "/config.json"))) as? [String: Any])
        config["bos_token_id"] = nil; config["eos_token_id"] = nil
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: bare + "/config.json"))
        try mergeWithFineTune(base: bare)
    }

    func mergeWithFineTune(base: String) throws {
        try? FileManager.default.removeItem(atPath: dir + "/ft"); try? FileManager.default.removeItem(atPath: dir + "/wise")
        let (model, tokenizer) = try ModelDirectory.load(base)
        let p = model.parameters
        let before = Array(UnsafeBufferPointer(start: p.values, count: p.count))
        for i in 0..<p.count { p.values[i] += Float(i % 7) * 1e-3 }   // "the fine-tune"
        let tuned = Array(UnsafeBufferPointer(start: p.values, count: p.count))
        try ModelDirectory.save(model, tokenizer: tokenizer, to: dir + "/ft", format: .hf)
        _ = try ModelMerge.merge([base, dir + "/ft"], weights: [0.5, 0.5], to: dir + "/wise")
        let (merged, _) = try ModelDirectory.load(dir + "/wise")
        XCTAssertEqual(merged.parameters.count, p.count)
        var worst: Float = 0
        for i in 0..<p.count { worst = max(worst, abs(merged.parameters.values[i] - (before[i] + tuned[i]) / 2)) }
        XCTAssertLessThan(worst, 1e-6)
    }

    func testMismatchedConfigsTokenizersAndWeightsAreRefused() throws {
        let (a, _) = try save("a", seed: 1), (deeper, _) = try save("deeper", seed: 2, layers: 3)
        let (hf, _) = try save("hf", seed: 3, format: .hf)
        func problem(_ dirs: [String], _ w: [Double]? = nil) -> String {
            do { _ = try ModelMerge.merge(dirs, weights: w, to: dir + "/out"); return "accepted" } catch { return "\(error)" }
        }
        let layers = problem([a, deeper])
        XCTAssertTrue(layers.contains("field \"n_layer\" is 3") && layers.contains("\(a)/config.json has 2"), layers)
        // The byte tokenizer with the Hugging Face files an export adds is the same tokenizer;
        // a BPE tokenizer.json in its place is not, and two BPE tokenizers compare by file.
        XCTAssertEqual(problem([a, hf]), "accepted")
        try FileManager.default.removeItem(atPath: dir + "/out")
        let bpe = dir + "/bpe", bpe2 = dir + "/bpe2"
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path + "/../ModelsTests/Fixtures/hf/models/gpt2"
        for d in [bpe, bpe2] {
            try FileManager.default.copyItem(atPath: hf, toPath: d)
            // The byte tokenizer's special_tokens_map.json (its <|pad|>) would apply to GPT-2's
            // older-kind tokenizer_config.json, as transformers reads them: not part of the stand-in.
            for file in [ModelDirectory.byteTokenizerFile, "special_tokens_map.json"] { try FileManager.default.removeItem(atPath: d + "/" + file) }
            for file in ["tokenizer.json", "tokenizer_config.json"] {
                try FileManager.default.removeItem(atPath: d + "/" + file)
                try FileManager.default.copyItem(atPath: fixture + "/" + file, toPath: d + "/" + file)
            }
        }
        let kinds = problem([a, bpe])
        XCTAssertTrue(kinds.contains("tokenizer differs") && kinds.contains("\(a) has sft-dist's byte tokenizer, \(bpe) a BPE tokenizer.json"), kinds)
        // The same tokenizer.json re-indented (another tool's save) is the same tokenizer.
        let tj = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: bpe2 + "/tokenizer.json")))
        try JSONSerialization.data(withJSONObject: tj, options: [.prettyPrinted]).write(to: URL(fileURLWithPath: bpe2 + "/tokenizer.json"))
        XCTAssertNotEqual(FileManager.default.contents(atPath: bpe + "/tokenizer.json"), FileManager.default.contents(atPath: bpe2 + "/tokenizer.json"))
        let same = problem([bpe, bpe2])   // (refused later: these stand-ins' weights do not fit the tokenizer)
        XCTAssertFalse(same.contains("tokenizer differs"), same)
        try "{\"model_max_length\": 16}".write(toFile: bpe2 + "/tokenizer_config.json", atomically: true, encoding: .utf8)
        let files = problem([bpe, bpe2])
        XCTAssertTrue(files.contains("tokenizer differs") && files.contains("in tokenizer_config.json (the files differ)"), files)
        XCTAssertTrue(problem([a, a], [1]).hasPrefix("--weights has 1 value for 2 models"), problem([a, a], [1]))
        XCTAssertTrue(problem([a]).contains("at least two"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out"), "nothing written")
    }
}
