import Foundation
import XCTest
@testable import Training

/// SemiEvol's pseudo-label selection on fixed samples, against values computed independently
/// with numpy (`np.percentile`, linear interpolation; `-np.mean(logprobs)`).
final class PseudoLabelVoteTests: XCTestCase {
    func testPercentileMatchesNumpy() {
        // np.percentile([3.5, -1.25, 0.0, 7.75, 2.0, 2.0, 11.0], q)
        let v = [3.5, -1.25, 0.0, 7.75, 2.0, 2.0, 11.0]
        XCTAssertEqual(PseudoLabelVote.percentile(v, 0)!, -1.25)
        XCTAssertEqual(PseudoLabelVote.percentile(v, 30)!, 1.5999999999999996, accuracy: 1e-12)
        XCTAssertEqual(PseudoLabelVote.percentile(v, 62.5)!, 3.125, accuracy: 1e-12)
        XCTAssertEqual(PseudoLabelVote.percentile(v, 100)!, 11.0)
        XCTAssertNil(PseudoLabelVote.percentile([], 30))
    }

    /// Six prompts of four samples: consistent, a 2-1 vote with an unfinished sample, a 2-2 tie
    /// (first key wins), no finished sample, a vote whose winner first appears at sample 1, a 3-1 vote.
    let keys: [[String?]] = [["7", "7", "7", "7"], ["7", "8", "7", nil], ["a", "b", "b", "a"], [nil, nil, nil, nil],
                             ["x", "y", "z", "y"], ["q", "r", "q", "q"]]
    /// Token log-probs per sample; only the representative's count (sample 0, 0, 0, –, 1, 0).
    var logProbs: [[[Float]]] {
        let other: [Float] = [-9, -9]
        return [[[-0.01], other, other, other], [[-0.1, -0.3], other, other, other], [[-1.0, -0.5, -0.9], other, other, other],
                [other, other, other, other], [other, [-2.0], other, other], [[-0.05, -0.15, -0.1, -0.3], other, other, other]]
    }

    func testVotesAndEntropyThreshold() {
        let d = PseudoLabelVote.decide(keys: keys, logProbs: logProbs, percentile: 30)
        XCTAssertEqual(d.map(\.key), ["7", "7", "a", nil, "y", "q"])
        XCTAssertEqual(d.map(\.votes), [4, 2, 2, 0, 2, 3])
        XCTAssertEqual(d.map(\.representative), [0, 0, 0, -1, 1, 0])
        XCTAssertEqual(d.map(\.consistent), [true, false, false, false, false, false])
        // -np.mean of each representative's log-probs (float32 inputs): 0.2, 0.8, 2.0, 0.15.
        XCTAssertEqual(d[1].entropy, 0.20000000670552254, accuracy: 1e-9)
        XCTAssertEqual(d[2].entropy, 0.8, accuracy: 1e-7)
        XCTAssertEqual(d[4].entropy, 2.0, accuracy: 1e-9)
        XCTAssertEqual(d[5].entropy, 0.15, accuracy: 1e-7)
        // np.percentile([0.2, 0.8, 2.0, 0.15], 30) = 0.195: only prompt 5 (0.15) is below it.
        XCTAssertEqual(d.map(\.selected), [true, false, false, false, false, true])
        // np.percentile(…, 50) = 0.5: prompts 1 (0.2) and 5 join.
        let half = PseudoLabelVote.decide(keys: keys, logProbs: logProbs, percentile: 50)
        XCTAssertEqual(half.map(\.selected), [true, true, false, false, false, true])
    }

    func testNumericScorerVotesOnTheLastNumber() {
        XCTAssertEqual(SelfTrainScoring.answerKey(" the answer is 12.0\n", scorer: "numeric"),
                       SelfTrainScoring.answerKey("12", scorer: "numeric"))
        XCTAssertEqual(SelfTrainScoring.answerKey("  68 \n", scorer: "task"), "68")
        XCTAssertNotEqual(SelfTrainScoring.answerKey("68", scorer: "exact"), SelfTrainScoring.answerKey("68.0", scorer: "exact"))
    }
}
