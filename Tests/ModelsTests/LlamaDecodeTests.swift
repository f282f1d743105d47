import XCTest
@testable import Models
@testable import TensorCore

/// KV-cache decoding of the Llama family equals full recomputation (rotary at absolute
/// positions, GQA, q/k/v biases, tied and untied heads), on the transformers-made fixtures.
final class LlamaDecodeTests: XCTestCase {
    func check(_ dir: String) throws {
        let model = try ModelDirectory.load(HFModelTests.model(dir)).model as! Llama
        checkCachedDecoding(model, a: [1, 70, 3, 99, 2, 2, 111, 0, 5], b: [4, 4, 80, 120, 6], label: dir)
    }

    func testLlamaCachedDecodingEqualsFullRecomputation() throws { try check("llama") }
    func testQwen2CachedDecodingEqualsFullRecomputation() throws { try check("qwen2") }
    func testQwen3CachedDecodingEqualsFullRecomputation() throws { try check("qwen3") }  // QK-Norm, head_dim ≠ hidden / heads

    /// Generation takes the cached path for Llama and picks what recomputation picks.
    func testCachedAndUncachedGreedyAgree() throws {
        let model = try ModelDirectory.load(HFModelTests.model("llama")).model as! Llama
        let options = SamplingOptions(maxNewTokens: 10)
        let cached = Generator.generate(model, prompts: [[3, 1, 4], [15, 9]], options: options, rngs: [RNG(seed: 0), RNG(seed: 1)])
        let plain = Generator.generate(UncachedModel(model), prompts: [[3, 1, 4], [15, 9]], options: options, rngs: [RNG(seed: 0), RNG(seed: 1)])
        XCTAssertEqual(cached.map(\.ids), plain.map(\.ids))
        for (c, p) in zip(cached, plain) {
            for (x, y) in zip(c.logProbs, p.logProbs) { XCTAssertEqual(x, y, accuracy: 1e-5) }
        }
    }

    /// Mistral's sliding window (8 in the fixture) caps the context: up to 8 tokens every
    /// causal position is inside the window, so results are transformers'; beyond it they would
    /// not be, so generation must stop at 8 tokens in all instead of decoding past the window.
    /// A 6-token prompt gets 2 new tokens (the ones full recomputation picks), an 8- or
    /// 11-token prompt none.
    func testMistralGenerationStopsAtTheSlidingWindow() throws {
        let model = try ModelDirectory.load(HFModelTests.model("mistral-sharded")).model as! Llama
        XCTAssertEqual(model.maxSequenceLength, 8)
        let prompts: [[Int32]] = [[5, 9, 2, 7, 7, 1], [3, 1, 4, 1, 5, 9, 2, 6], [2, 7, 1, 8, 2, 8, 1, 8, 2, 8, 4]]
        let options = SamplingOptions(maxNewTokens: 10)
        let rngs = prompts.indices.map { RNG(seed: UInt64($0)) }
        let cached = Generator.generate(model, prompts: prompts, options: options, rngs: rngs)
        let plain = Generator.generate(UncachedModel(model), prompts: prompts, options: options, rngs: rngs)
        XCTAssertEqual(cached.map(\.ids.count), [2, 0, 0], "tokens generated past each prompt")
        XCTAssertEqual(cached.map(\.ids), plain.map(\.ids))
        XCTAssertTrue(cached.allSatisfy { $0.finish == .length })
        for (c, p) in zip(cached, plain) {
            for (x, y) in zip(c.logProbs, p.logProbs) { XCTAssertEqual(x, y, accuracy: 1e-5) }
        }
    }
}
