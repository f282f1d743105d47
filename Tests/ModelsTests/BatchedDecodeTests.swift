import XCTest
@testable import Models
@testable import TensorCore

/// Batched generation (one GEMM over every prompt's row per step, rows finishing at
/// different steps) picks, token for token, what generating each prompt alone picks.
final class BatchedDecodeTests: XCTestCase {
    /// Eight prompts of lengths 1…8; the context ends some rows early, stop ids others.
    func checkBatchedEqualsAlone(_ model: LanguageModel, options: SamplingOptions, threads: Int, label: String) {
        let saved = Parallel.threads
        Parallel.threads = threads
        defer { Parallel.threads = saved }
        let V = Int32(model.vocabSize)
        let prompts: [[Int32]] = (1...8).map { n in (0..<n).map { Int32(($0 * 7 + n * 3) % Int(V)) } }
        let rngs = prompts.indices.map { RNG(seed: 11, stream: UInt64($0)) }
        let together = Generator.generate(model, prompts: prompts, options: options, rngs: rngs)
        XCTAssertGreaterThan(Set(together.map(\.ids.count)).count, 1, "\(label): rows should finish at different steps")
        for i in prompts.indices {
            let alone = Generator.generate(model, prompts: [prompts[i]], options: options, rngs: [rngs[i]])[0]
            XCTAssertEqual(together[i].ids, alone.ids, "\(label): prompt \(i)")
            XCTAssertEqual(together[i].finish, alone.finish, "\(label): prompt \(i)")
            XCTAssertEqual(together[i].logProbs.count, alone.logProbs.count, "\(label): prompt \(i)")
            for (x, y) in zip(together[i].logProbs, alone.logProbs) { XCTAssertEqual(x, y, accuracy: 1e-5, "\(label): prompt \(i)") }
        }
    }

    /// A batch larger than one KV cache's share of memory is decoded in chunks: the same
    /// tokens, log-probs and finishes as one batch, and onToken sees each prompt's own index.
    func testChunkedGenerationEqualsOneBatch() {
        let model = GPT2(config: GPT2Config(vocabSize: 29, contextLength: 16, embedDim: 16, layers: 2, heads: 4), seed: 7)
        let prompts: [[Int32]] = (0..<20).map { (n: Int) -> [Int32] in
            (0...(n % 5)).map { (i: Int) -> Int32 in Int32((i * 7 + n * 3) % 29) }
        }
        let rngs = prompts.indices.map { RNG(seed: 5, stream: UInt64($0)) }
        let options = SamplingOptions(maxNewTokens: 6, temperature: 1, stopIds: [3])
        var seen: [[Int32]] = Array(repeating: [], count: prompts.count)
        let whole = Generator.generate(model, prompts: prompts, options: options, rngs: rngs)
        XCTAssertEqual(Generator.rowsPerChunk(model, prompts: prompts, options: options), 4096)
        let saved = Generator.maxRowsPerChunk
        Generator.maxRowsPerChunk = 7
        defer { Generator.maxRowsPerChunk = saved }
        XCTAssertEqual(Generator.rowsPerChunk(model, prompts: prompts, options: options), 7)
        let chunked = Generator.generate(model, prompts: prompts, options: options, rngs: rngs, onToken: { seen[$0].append($1) })
        XCTAssertEqual(chunked.map(\.ids), whole.map(\.ids))
        for (a, b) in zip(chunked, whole) {
            XCTAssertEqual(a.logProbs.count, b.logProbs.count)
            for (x, y) in zip(a.logProbs, b.logProbs) { XCTAssertEqual(x, y, accuracy: 1e-5) }
        }
        XCTAssertEqual(chunked.map(\.finish), whole.map(\.finish))
        XCTAssertEqual(seen, whole.map(\.ids))
    }

    func testGPT2BatchedEqualsOneAtATime() {
        let model = GPT2(config: GPT2Config(vocabSize: 29, contextLength: 16, embedDim: 16, layers: 2, heads: 4), seed: 7)
        for threads in [1, 2] {
            checkBatchedEqualsAlone(model, options: SamplingOptions(maxNewTokens: 12, stopIds: [3]), threads: threads,
                                    label: "gpt2 greedy, \(threads) threads")
            checkBatchedEqualsAlone(model, options: SamplingOptions(maxNewTokens: 12, temperature: 1, stopIds: [3]),
                                    threads: threads, label: "gpt2 sampled, \(threads) threads")
            checkBatchedEqualsAlone(model, options: SamplingOptions(maxNewTokens: 12, temperature: 0.8, topK: 9, topP: 0.9),
                                    threads: threads, label: "gpt2 top-k/top-p, \(threads) threads")
        }
    }

    func testLlamaBatchedEqualsOneAtATime() throws {
        let model = try ModelDirectory.load(HFModelTests.model("llama")).model
        // Context 64: every tenth id stops a row, so rows end at different steps.
        let stops = Set((0..<63).map { Int32($0 * 10) })
        for threads in [1, 2] {
            checkBatchedEqualsAlone(model, options: SamplingOptions(maxNewTokens: 10, temperature: 1, stopIds: stops),
                                    threads: threads, label: "llama sampled, \(threads) threads")
        }
    }

    /// A row ended by a stop id records which: the token the same stream draws next when
    /// nothing stops it (rollouts train on it as their last token); a row cut at the length
    /// records none.
    func testAStoppedRowRecordsItsStopId() {
        let model = GPT2(config: GPT2Config(vocabSize: 29, contextLength: 16, embedDim: 16, layers: 2, heads: 4), seed: 5)
        let prompts: [[Int32]] = (1...8).map { n in (0..<n).map { Int32(($0 * 5 + n) % 29) } }
        let rngs = prompts.indices.map { RNG(seed: 3, stream: UInt64($0)) }
        let stops = Set((0..<29).filter { $0 % 4 == 1 }.map(Int32.init))
        let stopped = Generator.generate(model, prompts: prompts, options: SamplingOptions(maxNewTokens: 6, temperature: 1, stopIds: stops), rngs: rngs)
        let free = Generator.generate(model, prompts: prompts, options: SamplingOptions(maxNewTokens: 7, temperature: 1), rngs: rngs)
        XCTAssertTrue(stopped.contains { $0.finish == .stop } && stopped.contains { $0.finish == .length })
        for (i, (s, f)) in zip(stopped, free).enumerated() {
            XCTAssertEqual(Array(f.ids.prefix(s.ids.count)), s.ids, "prompt \(i)")
            XCTAssertEqual(s.stopId, s.finish == .stop ? f.ids[s.ids.count] : nil, "prompt \(i)")
        }
    }

    /// Logits of each segment's last position equal those rows of the every-position logits.
    func testLastPositionLogitsAreTheLastRowsOfEveryPosition() {
        let model = GPT2(config: GPT2Config(vocabSize: 29, contextLength: 16, embedDim: 16, layers: 2, heads: 4), seed: 3)
        let segments = [DecodeSegment(row: 0, tokens: [1, 5, 9]), DecodeSegment(row: 1, tokens: [4]),
                        DecodeSegment(row: 2, tokens: [2, 2])]
        let every = model.decode(segments, cache: model.makeCache(rows: 3, capacity: 8))
        let last = Array(model.decode(segments, cache: model.makeCache(rows: 3, capacity: 8), logitsOf: .lastPosition))
        let V = 29
        XCTAssertEqual(last.count, 3 * V)
        for (i, row) in [2, 3, 5].enumerated() {
            for j in 0..<V { XCTAssertEqual(last[i * V + j], every[row * V + j], accuracy: 1e-5, "segment \(i)") }
        }
    }
}
