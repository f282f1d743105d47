import XCTest
@testable import Distributed
@testable import Models
@testable import TensorCore
@testable import Training

final class ShardedGenerationTests: XCTestCase {
    func testRoundTripOfTheWireFormat() {
        let gens = [Generation(ids: [1, 2, 3], logProbs: [-0.5, -1, -2, -0.25], finish: .stop, text: nil),
                    Generation(ids: [], logProbs: [], finish: .length, text: "héllo")]
        let back = Generations(wireBytes: Generations(gens).wireBytes).items
        XCTAssertEqual(back.map(\.ids), gens.map(\.ids))
        XCTAssertEqual(back.map(\.logProbs), gens.map(\.logProbs))
        XCTAssertEqual(back.map(\.finish), gens.map(\.finish))
        XCTAssertEqual(back.map(\.text), gens.map(\.text))
    }

    func testSingleRankMatchesDirectGeneration() {
        let model = GPT2(config: GPT2Config(vocabSize: 11, contextLength: 16, embedDim: 8, layers: 1, heads: 2), seed: 1)
        let prompts: [[Int32]] = [[1, 2], [3], [4, 5, 6]]
        let options = SamplingOptions(maxNewTokens: 4, temperature: 1)
        let sharded = ShardedGeneration.generate(model, prompts: prompts, options: options, seed: 8, comm: LocalCommunicator())
        let direct = Generator.generate(model, prompts: prompts, options: options, rngs: (0..<3).map { RNG(seed: 8, stream: UInt64($0)) })
        XCTAssertEqual(sharded.map(\.ids), direct.map(\.ids))
    }
}
