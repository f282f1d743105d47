import XCTest
@testable import Models
@testable import TensorCore

final class GPT2DecodeTests: XCTestCase {
    let config = GPT2Config(vocabSize: 13, contextLength: 16, embedDim: 12, layers: 2, heads: 3)

    /// Prefill in pieces, then single tokens, for two rows of different lengths at once:
    /// every new position's logits equal a full recomputation.
    func testCachedDecodingEqualsFullRecomputation() {
        let model = GPT2(config: config, seed: 4)
        for i in 0..<model.parameters.count { model.parameters.values[i] *= 3 }
        checkCachedDecoding(model, a: [1, 7, 3, 9, 2, 2, 11, 0, 5], b: [4, 4, 8, 12, 6], label: "gpt2")
    }

    func testGenerationIsReproducibleAndIndependentOfBatching() {
        let model = GPT2(config: config, seed: 9)
        let prompts: [[Int32]] = [[1, 2, 3], [4, 5], [6, 7, 8, 9]]
        let options = SamplingOptions(maxNewTokens: 6, temperature: 0.9, topK: 6, topP: 0.9, stopIds: [0])
        let rngs = (0..<3).map { RNG(seed: 5, stream: UInt64($0)) }
        let together = Generator.generate(model, prompts: prompts, options: options, rngs: rngs)
        let again = Generator.generate(model, prompts: prompts, options: options, rngs: rngs)
        XCTAssertEqual(together.map(\.ids), again.map(\.ids))
        for i in 0..<3 {
            let alone = Generator.generate(model, prompts: [prompts[i]], options: options, rngs: [rngs[i]])[0]
            XCTAssertEqual(alone.ids, together[i].ids, "prompt \(i) must not depend on its batch")
        }
        let other = Generator.generate(model, prompts: prompts, options: options,
                                       rngs: (0..<3).map { RNG(seed: 6, stream: UInt64($0)) })
        XCTAssertNotEqual(other.map(\.ids), together.map(\.ids), "a different seed should sample differently")
    }

    /// The cached path and the recompute path pick the same greedy tokens and log-probs.
    func testCachedAndUncachedGreedyAgree() {
        let model = GPT2(config: config, seed: 2)
        let options = SamplingOptions(maxNewTokens: 8)
        let cached = Generator.generate(model, prompts: [[3, 1, 4]], options: options, rngs: [RNG(seed: 0)])[0]
        let plain = Generator.generate(UncachedModel(model), prompts: [[3, 1, 4]], options: options, rngs: [RNG(seed: 0)])[0]
        XCTAssertEqual(cached.ids, plain.ids)
        for (x, y) in zip(cached.logProbs, plain.logProbs) { XCTAssertEqual(x, y, accuracy: 1e-5) }
    }

    func testTopKOneIsGreedyAndStopStringsCut() {
        let model = GPT2(config: config, seed: 3)
        let greedy = Generator.generate(model, prompts: [[1, 2]], options: SamplingOptions(maxNewTokens: 5), rngs: [RNG(seed: 1)])[0]
        let k1 = Generator.generate(model, prompts: [[1, 2]], options: SamplingOptions(maxNewTokens: 5, temperature: 2, topK: 1),
                                    rngs: [RNG(seed: 1)])[0]
        XCTAssertEqual(greedy.ids, k1.ids)
        // Decode ids as letters; stop at the text of the third generated token.
        let letters: ([Int32]) -> String = { String($0.map { Character(UnicodeScalar(UInt8(97 + $0))) }) }
        let stopAt = letters([greedy.ids[2]])
        let cut = Generator.generate(model, prompts: [[1, 2]], options: SamplingOptions(maxNewTokens: 5, stopStrings: [stopAt]),
                                     rngs: [RNG(seed: 1)], decodeText: letters)[0]
        XCTAssertEqual(cut.finish, .stop)
        XCTAssertFalse(cut.text!.contains(stopAt))
        XCTAssertTrue(letters(greedy.ids).hasPrefix(cut.text!))
    }
}
