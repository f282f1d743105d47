import XCTest
@testable import Distributed

/// Records the sums a `GradientBuckets` starts, as offsets into the gradient buffer (and the
/// most reduce-scattered floats in flight at once, for `ShardedGradientsInFlightTests`).
final class RecordingCommunicator: Communicator {
    let origin: UnsafeMutablePointer<Float>
    var started: [Range<Int>] = []
    var progressed = 0, finished = 0
    var inFlight = 0, maxInFlight = 0
    init(origin: UnsafeMutablePointer<Float>) { self.origin = origin }
    var rank: Int { 0 }
    var size: Int { 2 }
    func allreduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp) {}
    func allreduce(_ buffer: UnsafeMutableBufferPointer<Double>, op: ReduceOp) {}
    func allreduce(_ buffer: UnsafeMutableBufferPointer<Int64>, op: ReduceOp) {}
    func broadcast(_ bytes: inout [UInt8], root: Int) {}
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) {}
    func gather(_ bytes: [UInt8], root: Int) -> [[UInt8]] { [bytes] }
    func allgather(_ bytes: [UInt8]) -> [[UInt8]] { [bytes] }
    func barrier() {}
    func startAllreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) {
        let lo = buffer.baseAddress! - origin
        started.append(lo..<(lo + buffer.count))
    }
    func progressAllreduces() { progressed += 1 }
    func finishAllreduces() { finished += 1; inFlight = 0 }
    func startReduceScatterSum(_ buffer: UnsafeBufferPointer<Float>, counts: [Int], into shard: UnsafeMutableBufferPointer<Float>) {
        let lo = UnsafeMutablePointer(mutating: buffer.baseAddress!) - origin
        started.append(lo..<(lo + buffer.count))
        inFlight += buffer.count
        maxInFlight = max(maxInFlight, inFlight)
    }
    func allgather(_ buffer: UnsafeMutableBufferPointer<Float>, counts: [Int]) {}
    func abortJob(code: Int32) -> Never { fatalError("abort \(code)") }
    func wallTime() -> Double { 0 }
}

final class GradientBucketsTests: XCTestCase {
    /// Marked blocks start at once, in backward order, cut into pieces of at most the cap;
    /// `finish` starts the canonical ranges no rank reached, then the gaps, and every float
    /// is summed exactly once.
    func testBucketsCoverEveryFloatOnceInPiecesNoLargerThanTheCap() {
        let total = 100
        let grads = UnsafeMutablePointer<Float>.allocate(capacity: total)
        defer { grads.deallocate() }
        let comm = RecordingCommunicator(origin: grads)
        let buckets = GradientBuckets(comm: comm, gradients: grads, count: total, maxFloatsPerSum: 16)
        let blocks = [60..<90, 30..<60]                  // backward order: the last block first
        buckets.ready(blocks[0])
        XCTAssertEqual(comm.started, [60..<76, 76..<90])
        buckets.ready(blocks[0])                         // a second mark of the same block is ignored
        XCTAssertEqual(comm.started.count, 2)
        buckets.progress()
        XCTAssertEqual(comm.progressed, 2)               // once after `ready`, once here
        buckets.finish(canonical: blocks)                // block 30..<60 never marked on this rank
        XCTAssertEqual(comm.finished, 1)
        XCTAssertEqual(comm.started, [60..<76, 76..<90, 30..<46, 46..<60, 0..<16, 16..<30, 90..<100])
        var seen = [Int](repeating: 0, count: total)
        for r in comm.started {
            XCTAssertLessThanOrEqual(r.count, 16)
            for i in r { seen[i] += 1 }
        }
        XCTAssertEqual(seen, [Int](repeating: 1, count: total))
        // The next step starts from nothing.
        buckets.finish(canonical: blocks)
        XCTAssertEqual(Array(comm.started.dropFirst(7)), [60..<76, 76..<90, 30..<46, 46..<60, 0..<16, 16..<30, 90..<100])
    }

    /// With a trainable subset only its regions are summed: marks are cut to them, gaps are
    /// filled inside them, and no frozen float is ever sent.
    func testOnlyTheTrainableRegionsAreSummed() {
        let total = 100
        let grads = UnsafeMutablePointer<Float>.allocate(capacity: total)
        defer { grads.deallocate() }
        let comm = RecordingCommunicator(origin: grads)
        let regions = [10..<40, 70..<95]
        let buckets = GradientBuckets(comm: comm, gradients: grads, regions: regions, maxFloatsPerSum: 16)
        let blocks = [60..<90, 30..<60]
        buckets.ready(blocks[0])
        XCTAssertEqual(comm.started, [70..<86, 86..<90])
        buckets.ready(blocks[1])
        XCTAssertEqual(comm.started.count, 3)
        XCTAssertEqual(comm.started.last, 30..<40)
        buckets.finish(canonical: blocks)
        var seen = [Int](repeating: 0, count: total)
        for r in comm.started { for i in r { seen[i] += 1 } }
        XCTAssertEqual(seen, (0..<total).map { i in regions.contains { $0.contains(i) } ? 1 : 0 })
    }
}
