import Foundation
import XCTest
@testable import Models
@testable import TensorCore

/// Directories *written by sft-dist* (`train --save-format hf`: a byte-tokenizer GPT-2 and a
/// Llama fine-tuned under `mpirun -n 4`), loaded by transformers, which recorded its logits and
/// token ids (`scripts/make-hf-fixtures record-export`, Fixtures/hf/exported/ + expected/). sft-dist
/// must agree with what transformers computes from sft-dist's own output.
final class HFExportTests: XCTestCase {
    static let root = HFModelTests.root

    func check(_ name: String) throws {
        let dir = Self.root + "/exported/" + name
        let (model, tokenizer) = try ModelDirectory.load(dir)
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.root + "/expected/exported-\(name).json"))) as! [String: Any]
        // transformers' tokenizer (our exported tokenizer.json) gives the ids sft-dist gives.
        let cases = meta["token_cases"] as! [[String: Any]]
        XCTAssertGreaterThan(cases.count, 40)
        for c in cases {
            let text = c["text"] as! String
            XCTAssertEqual(tokenizer.encode(text), (c["ids"] as! [Int]).map(Int32.init), "\(name): \(text.debugDescription)")
        }
        // transformers' logits from the exported weights and config.
        let err = try HFModelTests.maxLogitError(model, expected: "exported-" + name)
        XCTAssertLessThanOrEqual(err, 1e-4, "\(name): max |sft-dist − transformers| = \(err)")
    }

    /// GPT-2 preset trained with the byte tokenizer: the generated tokenizer.json is equivalent
    /// in transformers, and the GPT-2 config.json sft-dist writes loads with the same logits.
    func testByteTokenizerGPT2ExportLoadsInTransformers() throws {
        XCTAssertTrue(try ModelDirectory.load(Self.root + "/exported/byte-gpt2").tokenizer is ByteTokenizer)
        try check("byte-gpt2")
    }

    /// The Llama fixture fine-tuned by `mpirun -n 4 sft-dist train`, saved in HF format.
    func testTrainedLlamaExportLoadsInTransformers() throws {
        try check("llama-trained")
        // It really was trained: its weights differ from the checkpoint it started from.
        let start = try ModelDirectory.load(HFModelTests.model("llama")).model
        let trained = try ModelDirectory.load(Self.root + "/exported/llama-trained").model
        XCTAssertNotEqual(memcmp(start.parameters.values, trained.parameters.values, start.parameters.count * 4), 0)
    }
}
