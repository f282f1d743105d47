import Distributed
import TestSupport
import XCTest

/// `ShardedGradients` with ranks as threads (`InProcessCommunicator`): each rank's shard holds
/// the sum over ranks of exactly its parts, ZeRO-2 leaves the reduced full gradient zero
/// (whole pages returned by madvise, the edges written), and the parameter allgather gives
/// every rank every rank's parts.
final class ShardedGradientsTests: XCTestCase {
    func testReduceScatterSumsEachRanksPartsAndAllgatherRestoresTheWhole() {
        let count = 3 * 4096, frozen = 4096..<4100
        let regions = [0..<frozen.lowerBound, frozen.upperBound..<count]
        let results = InProcessGroup.run(size: 3) { comm -> (rank: Int, shard: [Float], owned: [Range<Int>], after: [Float], values: [Float]) in
            let grads = UnsafeMutablePointer<Float>.allocate(capacity: count)
            let values = UnsafeMutablePointer<Float>.allocate(capacity: count)
            defer { grads.deallocate(); values.deallocate() }
            for i in 0..<count { grads[i] = Float(comm.rank + 1) * Float(i % 1000) }
            let plan = try! ShardPlan(regions: regions, blocks: [8192..<count, 2000..<8192], size: comm.size, maxFloatsPerPiece: 3000)
            let sharded = ShardedGradients(comm: comm, gradients: grads, plan: plan, releasesGradients: true)
            sharded.ready(8192..<count)      // as backward reaches the last block
            sharded.finish()
            values.initialize(repeating: -1, count: count)
            for r in sharded.owned { for i in r { values[i] = Float(i) } }
            sharded.allgatherParameters(values)
            return (comm.rank, sharded.shardValues(), sharded.owned,
                    Array(UnsafeBufferPointer(start: grads, count: count)), Array(UnsafeBufferPointer(start: values, count: count)))
        }
        var ownedBy = [Int](repeating: 0, count: count)
        for r in results {
            var k = 0
            for range in r.owned {
                for i in range { XCTAssertEqual(r.shard[k], 6 * Float(i % 1000), "rank \(r.rank) float \(i)"); k += 1; ownedBy[i] += 1 }
            }
            XCTAssertEqual(k, r.shard.count)
            for i in 0..<count {
                let expected: Float = frozen.contains(i) ? Float(r.rank + 1) * Float(i % 1000) : 0
                if r.after[i] != expected { XCTFail("rank \(r.rank): gradient \(i) is \(r.after[i]) after ZeRO-2, not \(expected)"); break }
                let value: Float = frozen.contains(i) ? -1 : Float(i)
                if r.values[i] != value { XCTFail("rank \(r.rank): parameter \(i) is \(r.values[i]) after the allgather, not \(value)"); break }
            }
        }
        XCTAssertEqual(ownedBy.enumerated().filter { frozen.contains($0.offset) ? $0.element != 0 : $0.element != 1 }.count, 0,
                       "every trainable float owned by exactly one rank")
    }

    /// ZeRO-1 keeps the full gradient and its shard inside it: after the reduce-scatters (with
    /// so small an in-flight bound that they complete in several groups, each staged and copied
    /// home), each rank's own parts of the gradient buffer hold the sums over ranks, the other
    /// floats are untouched, the optimizer reads the sums there, and no shard-sized buffer is
    /// allocated (only the staging bound).
    func testZeroOneSumsLandInTheFullGradientAtTheRanksOwnParts() {
        let count = 3 * 4096
        let results = InProcessGroup.run(size: 3) { comm -> (rank: Int, owned: [Range<Int>], after: [Float], values: [Float], read: [Float], staging: Int, shardCount: Int) in
            let grads = UnsafeMutablePointer<Float>.allocate(capacity: count)
            defer { grads.deallocate() }
            for i in 0..<count { grads[i] = Float(comm.rank + 1) * Float(i % 1000) }
            let plan = try! ShardPlan(regions: [0..<count], blocks: [8192..<count, 0..<8192], size: comm.size, maxFloatsPerPiece: 1500)
            let sharded = ShardedGradients(comm: comm, gradients: grads, plan: plan, releasesGradients: false, maxFloatsInFlight: 3000)
            sharded.ready(8192..<count)
            sharded.finish()
            let read = sharded.owned.first.map { Array(UnsafeBufferPointer(start: sharded.summedGradient($0, moment: 0), count: $0.count)) } ?? []
            return (comm.rank, sharded.owned, Array(UnsafeBufferPointer(start: grads, count: count)), sharded.shardValues(), read,
                    sharded.stagingCount, sharded.shardCount)
        }
        for r in results {
            var mine = [Bool](repeating: false, count: count), k = 0
            for range in r.owned { for i in range { mine[i] = true } }
            for i in 0..<count {
                let expected = mine[i] ? 6 * Float(i % 1000) : Float(r.rank + 1) * Float(i % 1000)
                if r.after[i] != expected { XCTFail("rank \(r.rank): gradient \(i) is \(r.after[i]), not \(expected)"); break }
            }
            for range in r.owned { for i in range { XCTAssertEqual(r.values[k], 6 * Float(i % 1000)); k += 1 } }
            XCTAssertEqual(r.read, r.owned.first.map { $0.map { 6 * Float($0 % 1000) } } ?? [])
            XCTAssertLessThanOrEqual(r.staging, 3000 / 3 + 3, "rank \(r.rank): staging is its share of the in-flight bound")
            XCTAssertGreaterThan(r.shardCount, r.staging)
        }
    }
}
