import Foundation
import XCTest
import TestSupport
@testable import Models

/// generation_config.json is read (its eos_token_id: where transformers' generate stops),
/// carried through copies of the model and written back by every save, as transformers'
/// save_pretrained does: before, a fine-tuned Qwen2.5-Instruct lost the file and with it
/// `<|endoftext|>` as a stop for transformers' generate.
final class GenerationConfigTests: XCTestCase {
    var dir: String!
    override func setUpWithError() throws { dir = try makeTemporaryDirectory("sft-dist-generation-config") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func read(_ text: String) throws -> GenerationConfig? {
        try Data(text.utf8).write(to: URL(fileURLWithPath: dir + "/generation_config.json"))
        return try GenerationConfig.read(directory: dir)
    }

    func testReadsOneIdAListNullAndNoFile() throws {
        XCTAssertNil(try GenerationConfig.read(directory: dir))
        XCTAssertEqual(try read(#"{"eos_token_id": 151643}"#)?.eosTokenIds, [151643])
        XCTAssertEqual(try read(#"{"bos_token_id": 1, "eos_token_id": [151645, 151643], "top_p": 0.8}"#)?.eosTokenIds, [151645, 151643])
        XCTAssertEqual(try read(#"{"eos_token_id": null}"#)?.eosTokenIds, [])
        XCTAssertEqual(try read(#"{"temperature": 0.7}"#)?.eosTokenIds, [])
    }

    func testRefusesWhatIsNotATokenIdNamingFileAndField() throws {
        let path = dir + "/generation_config.json"
        for (text, says) in [(#"{"eos_token_id": "2"}"#, #"field "eos_token_id" must be an integer, got "2""#),
                             (#"{"eos_token_id": true}"#, #"field "eos_token_id" must be an integer, got true"#),
                             (#"{"eos_token_id": 2.5}"#, #"field "eos_token_id" must be an integer, got 2.5"#),
                             (#"{"eos_token_id": [2, "x"]}"#, #"field "eos_token_id[1]" must be an integer"#),
                             (#"{"eos_token_id": -1}"#, #"field "eos_token_id" must hold token ids ≥ 0, got -1"#),
                             (#"{"eos_token_id": [1, -2]}"#, #"field "eos_token_id" must hold token ids ≥ 0, got -2"#),
                             (#"{"eos_token_id": 9223372036854775807}"#, #"field "eos_token_id" is 9223372036854775807, out of range"#),
                             (#"{"eos_token_id": 2,"#, "not valid JSON"),
                             (#"[2]"#, "not a JSON object")] {
            XCTAssertThrowsError(try read(text), text) { e in
                let m = "\(e)"
                XCTAssertTrue(m.hasPrefix(path + ": "), m)
                XCTAssertTrue(m.contains(says), "\(text): \(m)")
            }
        }
    }

    func testSavesWriteItBackAndCopiesCarryIt() throws {
        let tokenizer = ByteTokenizer()
        let model = GPT2(config: GPT2Config(vocabSize: tokenizer.vocabSize, contextLength: 16, embedDim: 8, layers: 1, heads: 2), seed: 3)
        try ModelDirectory.save(model, tokenizer: tokenizer, to: dir + "/none")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/none/generation_config.json"), "a model without one gets none")

        let text = #"{"eos_token_id": [256, 3], "max_new_tokens": 40, "transformers_version": "4.57.0"}"#
        try Data(text.utf8).write(to: URL(fileURLWithPath: dir + "/none/generation_config.json"))
        let (loaded, tok) = try ModelDirectory.load(dir + "/none")
        XCTAssertEqual(loaded.generationConfig?.eosTokenIds, [256, 3])
        for (name, copy) in [("replica", loaded.makeReplica()), ("base", (loaded as! LoRAAdaptable).makeBaseReplica())] {
            XCTAssertEqual(copy.generationConfig?.eosTokenIds, [256, 3], name)
        }
        for format in ModelDirectory.SaveFormat.allCases {
            try ModelDirectory.save(loaded, tokenizer: tok, to: dir + "/\(format)", format: format)
            let written = try JSONObjectFile.read(dir + "/\(format)/generation_config.json")
            let original = try JSONObjectFile.read(dir + "/none/generation_config.json")
            XCTAssertEqual(written as NSDictionary, original as NSDictionary, "\(format)")
        }
        try ModelDirectory.export(from: dir + "/native", to: dir + "/exported")
        XCTAssertEqual(try GenerationConfig.read(directory: dir + "/exported")?.eosTokenIds, [256, 3])
    }
}
