import Foundation
import Models
import XCTest
@testable import Training

/// `--ref-model` (`Job/ReferenceModel.swift`) and online selection's candidate pools, as a
/// hostile review found them: a reference whose tokenizer had two ids swapped was taken (merge
/// refused it), and a pool running into the next epoch held a row twice — both copies scored
/// alike and were selected together.
final class ReferenceModelTests: XCTestCase {
    /// A copy of the Llama fixture, in a fresh temporary directory, whose tokenizer has the
    /// vocabulary entries `x` and `y` swapped; returns its path and their ids in the original.
    func llamaWithSwapped(_ x: String, _ y: String, name: String) throws -> (path: String, x: Int, y: Int) {
        let dir = NSTemporaryDirectory() + "reference-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let swapped = dir + "/" + name
        try FileManager.default.copyItem(atPath: LoRAFixtureTests.root + "/models/llama", toPath: swapped)
        let file = URL(fileURLWithPath: swapped + "/tokenizer.json")
        var tokenizer = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any])
        var model = try XCTUnwrap(tokenizer["model"] as? [String: Any]), vocab = try XCTUnwrap(model["vocab"] as? [String: Int])
        let (a, b) = (try XCTUnwrap(vocab[x]), try XCTUnwrap(vocab[y]))
        (vocab[x], vocab[y]) = (b, a)
        model["vocab"] = vocab; tokenizer["model"] = model
        try JSONSerialization.data(withJSONObject: tokenizer).write(to: file)
        return (swapped, a, b)
    }

    func testAReferenceWithAnotherTokenizerIsRefused() throws {
        let llama = LoRAFixtureTests.root + "/models/llama", swapped = try llamaWithSwapped("A", "B", name: "llama-swap").path
        let (trained, tok) = try ModelDirectory.load(llama)
        XCTAssertNoThrow(try ReferenceModel.load(llama, like: trained, tokenizer: tok))
        XCTAssertThrowsError(try ReferenceModel.load(swapped, like: trained, tokenizer: tok)) {
            XCTAssertTrue("\($0)".contains("llama-swap: the reference model's tokenizer differs from the trained model's (token id"), "\($0)")
        }
    }

    /// Two byte-level tokens of one byte past 0x7F ("§" and "¨" are the pieces of 0xA7 and
    /// 0xA8) each decode alone to U+FFFD: compared by their decoded text, the swap passed (the
    /// adapter loader shares the comparison).
    func testSwappedSingleByteTokensAreRefused() throws {
        let llama = LoRAFixtureTests.root + "/models/llama"
        let (swapped, a, b) = try llamaWithSwapped("§", "¨", name: "llama-bytes")
        let (trained, tok) = try ModelDirectory.load(llama)
        let (_, other) = try ModelDirectory.load(swapped)
        XCTAssertEqual(tok.decode([Int32(a)]), other.decode([Int32(a)]), "the swap is one the decoded text cannot see")
        XCTAssertThrowsError(try ReferenceModel.load(swapped, like: trained, tokenizer: tok)) {
            XCTAssertTrue("\($0)".contains("llama-bytes: the reference model's tokenizer differs from the trained model's (token id \(min(a, b))"), "\($0)")
        }
    }

    /// With LoRA the reference is loaded with the trained model's adapters; a reference of
    /// another architecture was refused as a `--lora-targets` error, a flag perhaps never given.
    func testALoRARunsReferenceOfAnotherArchitectureIsNamedSo() throws {
        let gpt2 = LoRAFixtureTests.root + "/models/gpt2", llama = LoRAFixtureTests.root + "/models/llama"
        let (trained, tok) = try ModelDirectory.load(gpt2, lora: LoRAConfig(rank: 2, alpha: 4, targets: ["c_attn"]))
        XCTAssertThrowsError(try ReferenceModel.load(llama, like: trained, tokenizer: tok)) {
            XCTAssertEqual("\($0)", "\(llama): the reference model (llama) has no module \"c_attn\" that the trained model's LoRA adapters target; a reference must share the trained model's architecture")
        }
    }

    func testDistinctPoolsNeverHoldARowTwice() {
        for (size, pool) in [(10, 7), (190, 32), (5, 5), (3, 1)] {
            let distinct = UniformSampler(datasetSize: size, batchSize: pool, seed: 9, distinct: true)
            let plain = UniformSampler(datasetSize: size, batchSize: pool, seed: 9)
            var plainRepeats = 0
            for step in 0..<60 {
                let rows = distinct.batch(step: step)
                XCTAssertEqual(rows.count, pool)
                XCTAssertEqual(Set(rows).count, pool, "size \(size), pool \(pool), step \(step): \(rows)")
                // A function of (seed, step): a fresh sampler gives the same pool.
                XCTAssertEqual(UniformSampler(datasetSize: size, batchSize: pool, seed: 9, distinct: true).batch(step: step), rows)
                let p = plain.batch(step: step)
                if Set(p).count < p.count { plainRepeats += 1 }
                // Within an epoch the two agree: only a pool that runs into the next one differs.
                if (step * pool) / size == (step * pool + pool - 1) / size { XCTAssertEqual(rows, p) }
            }
            if size % pool != 0 { XCTAssertGreaterThan(plainRepeats, 0, "size \(size), pool \(pool): the plain sampler never repeated") }
        }
    }
}
