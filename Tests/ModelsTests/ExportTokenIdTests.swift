import Foundation
import XCTest
import TestSupport
@testable import Models

/// config.json names bos/eos ids that exist in the model's vocabulary: transformers' GPT2Config
/// defaults both to GPT-2's 50256, which a 260-token byte-tokenizer model does not have
/// (transformers warned on load and generation never stopped on end-of-text).
final class ExportTokenIdTests: XCTestCase {
    var dir: String!
    override func setUpWithError() throws { dir = try makeTemporaryDirectory("sft-dist-token-ids") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func config(_ path: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path + "/config.json"))) as? [String: Any])
    }

    func testByteTokenizerGPT2NamesItsEndOfTextInEveryFormatAndExport() throws {
        let tokenizer = ByteTokenizer()
        let model = GPT2(config: GPT2Config(vocabSize: tokenizer.vocabSize, contextLength: 16, embedDim: 8, layers: 1, heads: 2), seed: 3)
        for format in ModelDirectory.SaveFormat.allCases {
            let path = dir + "/\(format)"
            try ModelDirectory.save(model, tokenizer: tokenizer, to: path, format: format)
            let json = try config(path)
            XCTAssertEqual(json["eos_token_id"] as? Int, Int(ByteTokenizer.endOfText), "\(format): \(json)")
            XCTAssertEqual(json["bos_token_id"] as? Int, Int(ByteTokenizer.endOfText), "\(format): GPT-2's BOS is its end-of-text")
            XCTAssertEqual(json["vocab_size"] as? Int, 260)
        }
        // export (load + save) keeps them, and the reloaded model is the same model.
        try ModelDirectory.export(from: dir + "/native", to: dir + "/exported")
        let exported = try config(dir + "/exported")
        XCTAssertEqual(exported["eos_token_id"] as? Int, 256)
        XCTAssertEqual(exported["bos_token_id"] as? Int, 256)
        XCTAssertTrue(try ModelDirectory.load(dir + "/exported").tokenizer is ByteTokenizer)
    }

    func testIdsOutsideTheVocabularyAreReplacedAndValidOnesKept() throws {
        let tokenizer = ByteTokenizer()
        let c = LlamaConfig(family: .llama, vocabSize: 300, hiddenSize: 8, intermediateSize: 12, layers: 1, heads: 2, kvHeads: 1, maxPositions: 16)
        func written(_ extra: [String: Any]) -> [String: Any] {
            ModelDirectory.configJSON(Llama(config: c, extraConfig: extra), tokenizer: tokenizer)
        }
        let gpt2Defaults = written(["bos_token_id": 50256, "eos_token_id": 50256])
        XCTAssertEqual(gpt2Defaults["bos_token_id"] as? Int, 256)
        XCTAssertEqual(gpt2Defaults["eos_token_id"] as? Int, 256)
        let valid = written(["bos_token_id": 1, "eos_token_id": [2, 258]])
        XCTAssertEqual(valid["bos_token_id"] as? Int, 1)
        XCTAssertEqual(valid["eos_token_id"] as? [Int], [2, 258])
        let oneBad = written(["bos_token_id": NSNull(), "eos_token_id": [2, 300]])
        XCTAssertTrue(oneBad["bos_token_id"] is NSNull, "an explicit null is valid for transformers")
        XCTAssertEqual(oneBad["eos_token_id"] as? Int, 256, "a list with an id past vocab_size")
        // As config.json reads: NSNumbers, where 0 and 1 also bridge to Bool and `true` to 1.
        let parsed = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(#"{"bos_token_id": 1, "eos_token_id": 0}"#.utf8)) as? [String: Any])
        XCTAssertEqual(written(parsed)["bos_token_id"] as? Int, 1)
        XCTAssertEqual(written(parsed)["eos_token_id"] as? Int, 0)
        let flags = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(#"{"bos_token_id": true, "eos_token_id": 7.5}"#.utf8)) as? [String: Any])
        XCTAssertEqual(written(flags)["bos_token_id"] as? Int, 256)
        XCTAssertEqual(written(flags)["eos_token_id"] as? Int, 256)
        for bad: Any in [-1, 2.5, true, "2", [Int]()] {
            XCTAssertEqual(written(["eos_token_id": bad])["eos_token_id"] as? Int, 256, "\(bad)")
        }
    }
}
