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
        XCTAssertLessThanOrEqual(err, 1e-5, "\(name): max |sft-dist − transformers| = \(err)")
    }

    /// The checks above load directories an earlier exporter wrote; this one re-exports them
    /// with today's exporter and requires the same files: every tensor (name, dtype, shape,
    /// bytes), every JSON file (as JSON) and every other file byte for byte, so what
    /// transformers was shown is still what `sft-dist export` writes.
    func reexportMatchesCommitted(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let committed = Self.root + "/exported/" + name
        let fresh = FileManager.default.temporaryDirectory.appendingPathComponent("sft-dist-reexport-\(getpid())/\(name)").path
        try? FileManager.default.removeItem(atPath: fresh)
        try ModelDirectory.export(from: committed, to: fresh)
        let want = try FileManager.default.contentsOfDirectory(atPath: committed).sorted()
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: fresh).sorted(), want, "\(name): files", file: file, line: line)
        for f in want {
            let a = committed + "/" + f, b = fresh + "/" + f
            if f.hasSuffix(".safetensors") {
                let x = try SafeTensorsFile(path: a), y = try SafeTensorsFile(path: b)
                XCTAssertEqual(x.names.sorted(), y.names.sorted(), "\(name)/\(f): tensor names", file: file, line: line)
                for t in x.names {
                    XCTAssertEqual(x.tensors[t]?.dtype, y.tensors[t]?.dtype, "\(name)/\(f): \(t) dtype", file: file, line: line)
                    XCTAssertEqual(x.tensors[t]?.shape, y.tensors[t]?.shape, "\(name)/\(f): \(t) shape", file: file, line: line)
                    let same = try x.withRawBytes(t) { p in try y.withRawBytes(t) { q in p.elementsEqual(q) } }
                    XCTAssertTrue(same, "\(name)/\(f): \(t) values", file: file, line: line)
                }
            } else if f.hasSuffix(".json") {
                let x = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: a))) as? NSObject
                let y = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: b))) as? NSObject
                XCTAssertEqual(x, y, "\(name)/\(f)", file: file, line: line)
            } else {
                XCTAssertEqual(FileManager.default.contents(atPath: a), FileManager.default.contents(atPath: b), "\(name)/\(f)", file: file, line: line)
            }
        }
    }

    func testTodaysExporterWritesTheCommittedFiles() throws {
        try reexportMatchesCommitted("byte-gpt2")
        try reexportMatchesCommitted("llama-trained")
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
