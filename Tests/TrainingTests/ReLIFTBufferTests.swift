import XCTest
@testable import Training

/// ReLIFT's buffer rule (arXiv 2506.07527, §3; `relift/trainer.py`): a prompt goes in when none
/// of its G rollouts succeeds (first reward function < 1), new failures in front, an SFT step
/// takes the first `sft_data_size`; and the producer's checkpointed buffer is validated.
final class ReLIFTBufferTests: XCTestCase {
    func rollout(_ rewards: [Float]) -> StepSequence {
        var s = StepSequence(example: 0, origin: .rollout, ids: [1, 2], lossMask: [0, 1], promptLength: 1)
        s.rewards = rewards
        return s
    }

    func testFailedPromptsAreThoseWithoutASuccessfulRollout() {
        // Three prompts of G = 3; the second reward function (format) never counts as success.
        let g: [[Float]] = [[0, 1], [0, 1], [0, 0],     // all fail (format alone is not success)
                            [0, 0], [1, 0], [0, 0],     // one success
                            [0.5, 1], [0.9, 0], [0, 1]] // partial credit below 1: fail
        let failed = ReLIFTBuffer.failedPrompts(g.map(rollout)[...], groupSize: 3)
        XCTAssertEqual(failed, [0, 2])
        // A slice that does not start at 0 (the rollouts of a generation followed by demonstrations).
        XCTAssertEqual(ReLIFTBuffer.failedPrompts(g.map(rollout)[3..<9], groupSize: 3), [1])
    }

    func testNewestFailuresFirstAndPopTakesTheFront() {
        var b = ReLIFTBuffer()
        b.pushFront([4, 9])
        XCTAssertNil(b.pop(3))
        b.pushFront([1])
        XCTAssertEqual(b.rows, [1, 4, 9])          // ReLIFT: concat([new, buffer])
        XCTAssertEqual(b.pop(2), [1, 4])           // ReLIFT: buffer[:sft_data_size]
        XCTAssertEqual(b.rows, [9])
        XCTAssertNil(b.pop(0))
    }

    func testRestoreRefusesARowOutsideTheData() throws {
        let prompts = (0..<2).map { i -> RolloutPrompt in
            var p = RolloutPrompt(ids: [1, 2], reference: "x", source: "d:\(i + 1)"); p.example = i; return p
        }
        let examples = (0..<2).map { _ in Example(ids: [1, 2, 3], lossMask: [0, 0, 1], promptLength: 2, answer: "x", source: "d") }
        let settings = try RolloutSettings(rollouts: 2, batchSize: 2, temperature: 1, topP: 1, maxCompletionLength: 2,
                                           stepsPerGeneration: 1, scaling: .group, seed: 1)
        let fn = try RewardFunction.make(specs: ["exact"], args: [:])
        let p = ReLIFTProducer(rollouts: RolloutProducer(settings: settings, prompts: prompts, rewards: fn, stopId: 0),
                               examples: examples, sftDataSize: 1)
        var s = p.saveState()
        s.values["relift_buffer"] = .ints([1, 0])
        s.values["relift_sft_steps"] = .int(2)
        try p.restoreState(s, step: 3)
        XCTAssertEqual(p.buffer.rows, [1, 0])
        XCTAssertEqual(p.sftSteps, 2)
        s.values["relift_buffer"] = .ints([2])
        XCTAssertThrowsError(try p.restoreState(s, step: 3)) { XCTAssertTrue("\($0)".contains("relift_buffer"), "\($0)") }
        s.values["relift_buffer"] = .ints([])
        s.values["relift_sft_steps"] = .int(4)
        XCTAssertThrowsError(try p.restoreState(s, step: 3)) { XCTAssertTrue("\($0)".contains("relift_sft_steps"), "\($0)") }
    }
}
