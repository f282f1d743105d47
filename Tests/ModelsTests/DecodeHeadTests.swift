import XCTest
@testable import Models
@testable import TensorCore

/// Batched generation with the decode-step head on `DecodeHeadGEMM` picks exactly the tokens,
/// with exactly the log-probs, that it picks with the head on OpenBLAS (the path before it):
/// 32 rows that stop at different steps, so the head sees many row counts (whole and partial
/// groups of 8 and 32 rows), greedy and sampled, at 1 and 2 threads.
final class DecodeHeadTests: XCTestCase {
    func testGenerationIdenticalToOpenBLASHead() throws {
        try XCTSkipUnless(DecodeGEMM.verifiedBuild, "DecodeHeadGEMM runs only on the OpenBLAS build it reproduces")
        let model = GPT2(config: GPT2Config(vocabSize: 4096, contextLength: 48, embedDim: 64, layers: 1, heads: 2), seed: 9)
        XCTAssertTrue(DecodeGEMM.sameSumsAsBLAS(m: 32, n: 4096, k: 64))
        var prompts: [[Int32]] = []
        for i in 0..<32 {
            let length = 1 + i % 5
            prompts.append((0..<length).map { (j: Int) -> Int32 in Int32((j * 131 + i * 17) % 4096) })
        }
        let stops: Set<Int32> = Set((0..<40).map { (j: Int) -> Int32 in Int32(j * 101) })
        let saved = Parallel.threads
        defer { Parallel.threads = saved; DecodeHead.forceBLAS = false }
        for threads in [1, 2] {
            Parallel.threads = threads
            for options in [SamplingOptions(maxNewTokens: 24, stopIds: stops),
                            SamplingOptions(maxNewTokens: 24, temperature: 1, stopIds: stops),
                            SamplingOptions(maxNewTokens: 24, temperature: 0.7, topK: 50, topP: 0.9, stopIds: stops)] {
                func run(blas: Bool) -> [Generation] {
                    DecodeHead.forceBLAS = blas
                    return Generator.generate(model, prompts: prompts, options: options,
                                              rngs: prompts.indices.map { RNG(seed: 4, stream: UInt64($0)) })
                }
                let want = run(blas: true), got = run(blas: false)
                let label = "T \(options.temperature), \(threads) threads"
                if options.temperature > 0 {  // greedy rows of this random model never reach a stop id
                    XCTAssertGreaterThan(Set(want.map(\.ids.count)).count, 3, "\(label): rows should stop at different steps")
                }
                for (w, g) in zip(want, got) {
                    XCTAssertEqual(g.ids, w.ids, label)
                    XCTAssertEqual(g.logProbs.map(\.bitPattern), w.logProbs.map(\.bitPattern), label)
                }
            }
        }
    }
}
