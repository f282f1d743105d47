import XCTest
@testable import Distributed

final class ShardPlanTests: XCTestCase {
    /// Every trainable float belongs to exactly one piece and one rank's part; blocks come
    /// first in backward order, cut at the cap; ranks' parts are consecutive and balanced.
    func testPiecesAndPartsCoverEveryTrainableFloatOnce() throws {
        let regions = [0..<20, 30..<100]
        let plan = try ShardPlan(regions: regions, blocks: [60..<90, 10..<60], size: 3, maxFloatsPerPiece: 16)
        XCTAssertEqual(plan.pieces.first, 60..<76)
        var seen = [Int](repeating: 0, count: 100)
        for p in plan.pieces {
            XCTAssertLessThanOrEqual(p.count, 16)
            let counts = plan.counts(p)
            XCTAssertEqual(counts.reduce(0, +), p.count)
            XCTAssertLessThanOrEqual(counts.max()! - counts.min()!, 1)
            for r in 0..<3 { for i in plan.part(p, rank: r) { seen[i] += 1 } }
        }
        for i in 0..<100 { XCTAssertEqual(seen[i], regions.contains { $0.contains(i) } ? 1 : 0, "float \(i)") }
        XCTAssertEqual(plan.owned(rank: 1).count, plan.pieces.count)
    }

    func testMoreRanksThanFloatsInABucketIsRefused() {
        XCTAssertThrowsError(try ShardPlan(regions: [0..<64, 80..<96], blocks: [0..<64], size: 17)) { error in
            XCTAssertEqual("\(error)", "--zero: a gradient bucket (floats 80..<96) has 16 trainable floats, fewer than the 17 ranks that would share it; run on at most 16 ranks or without --zero")
        }
        XCTAssertNoThrow(try ShardPlan(regions: [0..<64, 80..<96], blocks: [0..<64], size: 16))
    }
}
