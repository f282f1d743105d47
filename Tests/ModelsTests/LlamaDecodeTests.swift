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
}
