/// The collectives sft-dist needs, over one group of ranks (MPI_COMM_WORLD or a single
/// process). Every call is collective: all ranks make the same calls in the same order.
///
/// Rank 0 is the coordinator (it decides each step's work and broadcasts it); all ranks do
/// the work. A fatal error goes through `abort(_:)`, never through a Swift trap, so one rank
/// failing brings down the whole job instead of leaving the others waiting in a collective.
public protocol Communicator: AnyObject {
    var rank: Int { get }
    var size: Int { get }

    /// In-place sum (or max/min) over all ranks.
    func allreduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp)
    func allreduce(_ buffer: UnsafeMutableBufferPointer<Double>, op: ReduceOp)
    func allreduce(_ buffer: UnsafeMutableBufferPointer<Int64>, op: ReduceOp)

    /// Root's bytes replace every other rank's `bytes`.
    func broadcast(_ bytes: inout [UInt8], root: Int)
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int)
    /// Every rank's bytes, indexed by rank, on `root` only (others get []).
    func gather(_ bytes: [UInt8], root: Int) -> [[UInt8]]
    /// Every rank's bytes, indexed by rank, on every rank.
    func allgather(_ bytes: [UInt8]) -> [[UInt8]]
    func barrier()

    /// Starts an in-place float sum that completes by `finishAllreduces()`; every rank must
    /// start the same buffers in the same order. (Size 1: nothing to do.)
    func startAllreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>)
    /// Lets outstanding sums advance (Open MPI 4 progresses them only inside MPI calls).
    func progressAllreduces()
    /// Waits until every started sum is complete.
    func finishAllreduces()

    /// ZeRO: starts a float sum of `buffer` over ranks whose part r (`counts[r]` consecutive
    /// floats, parts in rank order) lands in rank r's `shard` (`counts[rank]` floats, not
    /// overlapping `buffer`); completes by `finishAllreduces()`, like `startAllreduceSum`.
    func startReduceScatterSum(_ buffer: UnsafeBufferPointer<Float>, counts: [Int], into shard: UnsafeMutableBufferPointer<Float>)
    /// ZeRO, in place: rank r's part of `buffer` (`counts[r]` floats after the parts of the
    /// ranks before it) reaches every rank.
    func allgather(_ buffer: UnsafeMutableBufferPointer<Float>, counts: [Int])

    /// Prints nothing; ends every rank of the job with `code`. Use `Fatal` to print first.
    func abortJob(code: Int32) -> Never
    /// Seconds on a monotonic clock (MPI_Wtime under MPI).
    func wallTime() -> Double
}

public enum ReduceOp: Int32, Sendable {
    case sum = 0, max = 1, min = 2
}

extension Communicator {
    public var isCoordinator: Bool { rank == 0 }

    public func allreduce(_ array: inout [Float], op: ReduceOp = .sum) {
        array.withUnsafeMutableBufferPointer { allreduce($0, op: op) }
    }
    public func allreduce(_ array: inout [Double], op: ReduceOp = .sum) {
        array.withUnsafeMutableBufferPointer { allreduce($0, op: op) }
    }
    public func allreduce(_ array: inout [Int64], op: ReduceOp = .sum) {
        array.withUnsafeMutableBufferPointer { allreduce($0, op: op) }
    }
    public func allreduce(_ value: Double, op: ReduceOp = .sum) -> Double {
        var a = [value]; allreduce(&a, op: op); return a[0]
    }
    public func allreduce(_ value: Int64, op: ReduceOp = .sum) -> Int64 {
        var a = [value]; allreduce(&a, op: op); return a[0]
    }

    /// Broadcast a Codable-free value as a string (recipes, messages).
    public func broadcast(_ string: String, root: Int = 0) -> String {
        var bytes = Array(string.utf8)
        broadcast(&bytes, root: root)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Collective: the lowest rank that passes true, or nil. One byte broadcast from each rank
    /// in turn — broadcasts only, for checks that run before the ranks are known to agree on
    /// Open MPI's collective algorithms (an allreduce over mismatched ones can stall).
    public func firstFlaggedRank(_ flagged: Bool) -> Int? {
        var first: Int? = nil
        for r in 0..<size {
            var flag: [UInt8] = [r == rank && flagged ? 1 : 0]
            broadcast(&flag, root: r)
            if flag[0] == 1 && first == nil { first = r }
        }
        return first
    }
}
