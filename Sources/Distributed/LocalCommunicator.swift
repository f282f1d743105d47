import Foundation

/// The size-1 communicator: every collective is the identity. Lets `sft-dist` run as a
/// plain process, without mpirun, with exactly the same code path as rank 0 of a job.
public final class LocalCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp) {}
    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Double>, op: ReduceOp) {}
    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Int64>, op: ReduceOp) {}
    public func broadcast(_ bytes: inout [UInt8], root: Int) {}
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) {}
    public func gather(_ bytes: [UInt8], root: Int) -> [[UInt8]] { [bytes] }
    public func allgather(_ bytes: [UInt8]) -> [[UInt8]] { [bytes] }
    public func barrier() {}
    public func startAllreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) {}
    public func progressAllreduces() {}
    public func finishAllreduces() {}
    public func startReduceScatterSum(_ buffer: UnsafeBufferPointer<Float>, counts: [Int], into shard: UnsafeMutableBufferPointer<Float>) {
        shard.baseAddress!.update(from: buffer.baseAddress!, count: counts[0])
    }
    public func allgather(_ buffer: UnsafeMutableBufferPointer<Float>, counts: [Int]) {}
    /// Flushed, then `_exit`: `exit`'s handlers include OpenBLAS's finalizer, which can wait for
    /// ever on a thread stuck mapping its buffer under an address-space limit (`Fatal.failNow`).
    public func abortJob(code: Int32) -> Never {
        fflush(nil)
        _exit(code)
    }
    public func wallTime() -> Double { ProcessInfo.processInfo.systemUptime }
}
