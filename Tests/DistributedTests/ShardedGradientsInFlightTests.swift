import XCTest
@testable import Distributed

/// `ShardedGradients` never has more than `maxFloatsInFlight` floats in reduce-scatters at
/// once (Open MPI's reduce-scatter holds two temporaries of each piece in flight), still
/// starts every piece exactly once in plan order, and lets a block's pieces start together
/// when they fit.
final class ShardedGradientsInFlightTests: XCTestCase {
    func testReduceScattersInFlightStayUnderTheBound() throws {
        let total = 100
        let grads = UnsafeMutablePointer<Float>.allocate(capacity: total)
        defer { grads.deallocate() }
        grads.initialize(repeating: 1, count: total)
        let comm = RecordingCommunicator(origin: grads)
        // Backward finishes 60..<100, then 20..<60; 0..<20 (the embeddings) is left to finish().
        let plan = try ShardPlan(regions: [0..<total], blocks: [60..<100, 20..<60], size: 2, maxFloatsPerPiece: 10)
        let sharded = ShardedGradients(comm: comm, gradients: grads, plan: plan, releasePages: nil, maxFloatsInFlight: 25)
        for step in 0..<2 {
            sharded.zeroGradients()
            sharded.ready(60..<100)
            XCTAssertEqual(comm.started.count, 4 * step + 4 * step + 2 * step + 4, "step \(step): the block's four pieces started")
            sharded.ready(20..<60)
            sharded.finish()
            XCTAssertLessThanOrEqual(comm.maxInFlight, 25, "step \(step): floats in flight")
            XCTAssertGreaterThanOrEqual(comm.maxInFlight, 20, "pieces that fit together start together")
        }
        XCTAssertEqual(comm.started, Array(repeating: plan.pieces, count: 2).flatMap { $0 }, "every piece once per step, in plan order")
    }
}
