import Distributed
import Foundation
import TensorCore

/// Ranks as threads of the test process: `InProcessGroup.run(size:)` runs one body per rank,
/// each with its own `InProcessCommunicator`, and every collective is a real exchange between
/// them (a blocking rendezvous of all ranks, results combined in rank order). The trainer's
/// step then runs at several rank counts in one test process, through the same calls MPI
/// serves, without mpirun. Needs `Parallel.threads == 1` (the tensor core's pool is driven
/// by one thread at a time), which `run` sets for its duration.
public final class InProcessGroup: @unchecked Sendable {
    public let size: Int
    private let condition = NSCondition()
    private var slots: [Any?]
    private var arrived = 0, generation = 0
    private var completed: [Any?] = []

    init(size: Int) {
        self.size = size
        slots = [Any?](repeating: nil, count: size)
    }

    /// Every rank's `value`, indexed by rank, once all ranks have called.
    func exchange(rank: Int, _ value: Any) -> [Any] {
        condition.lock(); defer { condition.unlock() }
        let round = generation
        slots[rank] = value
        arrived += 1
        if arrived == size {
            // The next round cannot complete before every rank has returned from this one,
            // so `completed` stays valid until all have read it.
            completed = slots
            slots = [Any?](repeating: nil, count: size)
            arrived = 0
            generation += 1
            condition.broadcast()
        } else {
            while generation == round { condition.wait() }
        }
        return completed.map { $0! }
    }

    /// Runs `body(communicator)` on `size` threads at once and returns their results by rank.
    public static func run<T>(size: Int, _ body: @escaping (Communicator) -> T) -> [T] {
        let group = InProcessGroup(size: size)
        let threads = Parallel.threads
        Parallel.threads = 1
        defer { Parallel.threads = threads }
        let boxes = (0..<size).map { _ in ResultBox() }
        let done = DispatchSemaphore(value: 0)
        for rank in 0..<size {
            let thread = Thread {
                boxes[rank].value = body(InProcessCommunicator(group: group, rank: rank))
                done.signal()
            }
            thread.stackSize = 16 << 20
            thread.start()
        }
        for _ in 0..<size { done.wait() }
        return boxes.map { $0.value as! T }
    }
}

private final class ResultBox: @unchecked Sendable { var value: Any? }

public final class InProcessCommunicator: Communicator {
    let group: InProcessGroup
    public let rank: Int
    public var size: Int { group.size }

    init(group: InProcessGroup, rank: Int) { self.group = group; self.rank = rank }

    func reduce<T: Numeric & Comparable>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReduceOp) {
        let all = group.exchange(rank: rank, Array(buffer)).map { $0 as! [T] }
        for i in buffer.indices {
            var v = all[0][i]
            for r in 1..<all.count {
                switch op {
                case .sum: v += all[r][i]
                case .max: v = max(v, all[r][i])
                case .min: v = min(v, all[r][i])
                }
            }
            buffer[i] = v
        }
    }

    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp) { reduce(buffer, op: op) }
    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Double>, op: ReduceOp) { reduce(buffer, op: op) }
    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Int64>, op: ReduceOp) { reduce(buffer, op: op) }
    public func broadcast(_ bytes: inout [UInt8], root: Int) {
        bytes = group.exchange(rank: rank, bytes)[root] as! [UInt8]
    }
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) {
        let rootValues = group.exchange(rank: rank, Array(buffer))[root] as! [Float]
        for i in buffer.indices { buffer[i] = rootValues[i] }
    }
    public func gather(_ bytes: [UInt8], root: Int) -> [[UInt8]] {
        let all = allgather(bytes)
        return rank == root ? all : []
    }
    public func allgather(_ bytes: [UInt8]) -> [[UInt8]] {
        group.exchange(rank: rank, bytes).map { $0 as! [UInt8] }
    }
    public func barrier() { _ = group.exchange(rank: rank, 0) }
    /// Completes at once: every rank starts the same buffers in the same order, so a blocking
    /// sum at the start is a valid (if not overlapped) schedule.
    public func startAllreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) { reduce(buffer, op: .sum) }
    /// Completes at once, summing in rank order (as `reduce`), like `startAllreduceSum`.
    public func startReduceScatterSum(_ buffer: UnsafeBufferPointer<Float>, counts: [Int], into shard: UnsafeMutableBufferPointer<Float>) {
        let all = group.exchange(rank: rank, Array(buffer)).map { $0 as! [Float] }
        let lo = counts[..<rank].reduce(0, +)
        for i in 0..<counts[rank] {
            var v = all[0][lo + i]
            for r in 1..<all.count { v += all[r][lo + i] }
            shard[i] = v
        }
    }
    public func allgather(_ buffer: UnsafeMutableBufferPointer<Float>, counts: [Int]) {
        let lo = counts[..<rank].reduce(0, +)
        let parts = group.exchange(rank: rank, Array(buffer[lo..<(lo + counts[rank])])).map { $0 as! [Float] }
        var at = 0
        for part in parts { for v in part { buffer[at] = v; at += 1 } }
    }
    public func progressAllreduces() {}
    public func finishAllreduces() {}
    public func abortJob(code: Int32) -> Never { fatalError("in-process rank \(rank): abort with code \(code)") }
    public func wallTime() -> Double { ProcessInfo.processInfo.systemUptime }
}
