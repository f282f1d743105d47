import XCTest
@testable import Models
@testable import TensorCore

/// KV-cache decoding of the Llama family equals full recomputation (rotary at absolute
/// positions, GQA, q/k/v biases, tied and untied heads), on the transformers-made fixtures.
final class LlamaDecodeTests: XCTestCase {
    func fullLogits(_ model: Llama, _ seq: [Int32]) -> [Float] {
        model.forward(Tape(recording: false), inputs: seq, batch: 1, seqLen: seq.count).values
    }

    /// Prefill in pieces, then single tokens, for two rows of different lengths at once.
    func check(_ dir: String) throws {
        let model = try ModelDirectory.load(HFModelTests.model(dir)).model as! Llama
        let a: [Int32] = [1, 70, 3, 99, 2, 2, 111, 0, 5], b: [Int32] = [4, 4, 80, 120, 6]
        let cache = model.makeCache(rows: 2, capacity: 16)
        let V = model.vocabSize
        var fedA = 0, fedB = 0
        for (na, nb) in [(4, 2), (2, 1), (1, 1), (1, 1), (1, 0)] {
            var segs: [DecodeSegment] = []
            if na > 0 { segs.append(DecodeSegment(row: 0, tokens: Array(a[fedA..<(fedA + na)]))) }
            if nb > 0 { segs.append(DecodeSegment(row: 1, tokens: Array(b[fedB..<(fedB + nb)]))) }
            let got = model.decode(segs, cache: cache)
            let fa = fullLogits(model, Array(a[0..<(fedA + na)]))
            let fb = nb > 0 ? fullLogits(model, Array(b[0..<(fedB + nb)])) : []
            var worst: Float = 0
            for i in 0..<(na * V) { worst = max(worst, abs(got[i] - fa[fedA * V + i])) }
            for i in 0..<(nb * V) { worst = max(worst, abs(got[na * V + i] - fb[fedB * V + i])) }
            XCTAssertLessThanOrEqual(worst, 1e-5, "\(dir): step at \(fedA)/\(fedB)")
            fedA += na; fedB += nb
        }
        XCTAssertEqual(cache.length, [9, 5])
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
