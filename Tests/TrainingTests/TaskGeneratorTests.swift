import Foundation
import XCTest
@testable import Training

/// The built-in tasks: deterministic per seed, answers recomputed independently, and written
/// as JSONL that the reader reads back.
final class TaskGeneratorTests: XCTestCase {
    private var tempDir: URL!

    override func setUpWithError() throws {
        tempDir = FileManager.default.temporaryDirectory
            .appendingPathComponent("sft-dist-taskgen-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tempDir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: tempDir)
    }

    func testTaskGeneratorIsDeterministicAndCorrect() throws {
        let records = TaskGenerator.generate(count: 500, seed: 3)
        XCTAssertEqual(records, TaskGenerator.generate(count: 500, seed: 3))
        XCTAssertNotEqual(records, TaskGenerator.generate(count: 500, seed: 4))
        XCTAssertEqual(Array(records.prefix(20)), TaskGenerator.generate(count: 20, seed: 3))
        var kindsSeen = Set<String>()
        for r in records {
            let prompt = try XCTUnwrap(r["prompt"]), completion = try XCTUnwrap(r["completion"])
            XCTAssertEqual(Set(r.keys), ["prompt", "completion"])
            XCTAssertLessThanOrEqual(prompt.utf8.count, 20, prompt)
            XCTAssertLessThanOrEqual(completion.utf8.count, 8, completion)
            XCTAssertTrue(prompt.hasSuffix(" =") && completion.hasPrefix(" "), prompt + completion)
            let words = prompt.split(separator: " ").map(String.init)
            kindsSeen.insert(words[0])
            let answer = String(completion.dropFirst())
            // Recomputed here independently of the generator's solver.
            switch words[0] {
            case "add": XCTAssertEqual(Int(answer), Int(words[1])! + Int(words[2])!, prompt)
            case "mul": XCTAssertEqual(Int(answer), Int(words[1])! * Int(words[2])!, prompt)
            case "reverse": XCTAssertEqual(answer, String(words[1].reversed()))
            case "copy": XCTAssertEqual(answer, words[1])
            case "repeat": XCTAssertEqual(answer, String(repeating: words[1], count: Int(words[2])!))
            case "sort": XCTAssertEqual(answer, String(words[1].sorted()))
            case "upper": XCTAssertEqual(answer, words[1].uppercased())
            default: XCTFail("unknown task \(prompt)")
            }
            XCTAssertEqual(TaskGenerator.expectedCompletion(forPrompt: prompt), completion)
        }
        XCTAssertEqual(kindsSeen, Set(TaskGenerator.kinds))
        XCTAssertEqual(TaskGenerator.expectedCompletion(forPrompt: "add 23 45 ="), " 68")
        XCTAssertEqual(TaskGenerator.expectedCompletion(forPrompt: "reverse abc ="), " cba")
        XCTAssertNil(TaskGenerator.expectedCompletion(forPrompt: "what is 2+2?"))
    }

    func testWriteJSONLRoundTripsThroughReader() throws {
        var records = TaskGenerator.generate(count: 30, seed: 1)
        records.append(["prompt": "quote \" back\\slash\n tab\t ctl\u{1} é 🚀", "completion": " <|im_end|>"])
        let path = tempDir.appendingPathComponent("train.jsonl").path
        try TaskGenerator.writeJSONL(records, to: path)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertTrue(text.hasPrefix(#"{"prompt":""#))
        XCTAssertTrue(text.hasSuffix(#"{"prompt":"quote \" back\\slash\n tab\t ctl\u0001 é 🚀","completion":" <|im_end|>"}"# + "\n"))
        let read = try JSONLReader.read(path: path)
        XCTAssertEqual(read.records.count, 31)
        for (r, original) in zip(read.records, records) {
            XCTAssertEqual(r.record, .promptCompletion(prompt: original["prompt"]!, completion: original["completion"]!))
        }
        XCTAssertThrowsError(try TaskGenerator.writeJSONL([["prompt": "x"]], to: path))
        XCTAssertThrowsError(try TaskGenerator.writeJSONL(records, to: tempDir.appendingPathComponent("no/dir/x.jsonl").path)) {
            XCTAssertTrue("\($0)".contains(": cannot write ("), "\($0)")
        }
    }
}
