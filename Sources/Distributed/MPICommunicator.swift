import CMPI
import Foundation

/// MPI_COMM_WORLD through the CMPI shim. Created once per process (MPI_Init_thread) and
/// finalized by `finish()`. Any MPI error code other than success is fatal: MPI_COMM_WORLD
/// returns error codes (MPI_ERRORS_RETURN) instead of aborting inside MPI, so `check` names
/// the failed call and rank and ends the job with exit code 3 (README, "Exit codes").
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    public let threadLevel: Int32

    /// Open MPI's algorithm for the non-blocking gradient sums, unless the user chose one
    /// (`OMPI_MCA_coll_libnbc_iallreduce_algorithm`, read by MPI_Init): 1 = ring, a
    /// reduce-scatter then an allgather, so every rank reduces and sends 1/size of each
    /// bucket. libnbc's own choice for fewer than 4 ranks or an in-place sum is a binomial
    /// tree that ships every bucket whole to rank 0 and back (at 2 ranks on gpt2-mini: 46 ms
    /// of allreduce per step against 26 ms with the ring, `sft-dist bench`).
    public static let iallreduceAlgorithm = (variable: "OMPI_MCA_coll_libnbc_iallreduce_algorithm", ring: "1")

    /// Whether this process set `iallreduceAlgorithm` itself (the user had not): the rank
    /// comparison of Open MPI's settings then names the value as this default, not the user's.
    nonisolated(unsafe) public private(set) static var iallreduceDefaulted = false

    /// Initialises MPI (FUNNELED: only the main thread calls MPI).
    public init() {
        var provided: Int32 = 0
        if cmpi_initialized() == 0 {
            if getenv(Self.iallreduceAlgorithm.variable) == nil {   // the user's setting wins
                setenv(Self.iallreduceAlgorithm.variable, Self.iallreduceAlgorithm.ring, 1)
                Self.iallreduceDefaulted = true
            }
            _ = cmpi_init_thread(cmpi_thread_funneled(), &provided)
        }
        threadLevel = provided
        _ = cmpi_errors_return()
        rank = Int(cmpi_rank())
        size = Int(cmpi_size())
    }

    /// True when this process was started by mpirun/srun (Open MPI, PMIx or Slurm env).
    public static var launchedByMPI: Bool {
        let env = ProcessInfo.processInfo.environment
        return env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMIX_RANK"] != nil
            || env["PMI_RANK"] != nil
    }

    public func finish() {
        watchdog = nil
        if cmpi_finalized() == 0 { _ = cmpi_finalize() }
    }

    /// Guards every collective from now on: one waiting longer than `seconds` ends the job
    /// with a message naming the rank and the collective (see `Watchdog`). 0 turns it off.
    public private(set) var watchdog: Watchdog?

    public func startWatchdog(seconds: Double) {
        guard seconds > 0, size > 1 else { watchdog = nil; return }
        let rank = self.rank
        watchdog = Watchdog(seconds: seconds, rank: rank, clock: { cmpi_wtime() }, abort: { message in
            StandardError.write("sft-dist: error (rank \(rank)): \(message)\n")
            // If MPI_Abort cannot end the process from this thread, exit anyway: the
            // launcher treats a rank that exits without MPI_Finalize as a failed job.
            Thread.detachNewThread { Thread.sleep(forTimeInterval: 5); _exit(Fatal.Code.watchdog) }
            cmpi_abort(Fatal.Code.watchdog)
        })
    }

    /// Runs one collective under the watchdog, if any.
    @inline(__always)
    private func watched(_ name: String, _ body: () -> Void) {
        if let w = watchdog { w.guarding(name, body) } else { body() }
    }

    private func check(_ code: Int32, _ what: String) {
        if code != 0 {
            StandardError.write("sft-dist: MPI \(what) failed with code \(code) on rank \(rank)\n")
            cmpi_abort(Fatal.Code.mpi)
        }
    }

    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp) {
        forEachChunk(buffer.count) { start, n in
            watched("allreduce (\(n) floats)") { check(cmpi_allreduce_f32(buffer.baseAddress! + start, n, op.rawValue), "allreduce") }
        }
    }
    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Double>, op: ReduceOp) {
        forEachChunk(buffer.count) { start, n in
            watched("allreduce (\(n) doubles)") { check(cmpi_allreduce_f64(buffer.baseAddress! + start, n, op.rawValue), "allreduce") }
        }
    }
    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Int64>, op: ReduceOp) {
        forEachChunk(buffer.count) { start, n in
            watched("allreduce (\(n) int64s)") { check(cmpi_allreduce_i64(buffer.baseAddress! + start, n, op.rawValue), "allreduce") }
        }
    }

    public func broadcast(_ bytes: inout [UInt8], root: Int) {
        // Size first, so receivers can size their buffer.
        var n = [Int64(bytes.count)]
        n.withUnsafeMutableBytes { p in
            watched("broadcast (byte count)") { check(cmpi_bcast_bytes(p.baseAddress, 8, Int32(root)), "broadcast") }
        }
        if rank != root { bytes = [UInt8](repeating: 0, count: Int(n[0])) }
        bytes.withUnsafeMutableBytes { p in
            forEachChunk(p.count) { start, k in
                watched("broadcast (\(k) bytes)") { check(cmpi_bcast_bytes(p.baseAddress! + start, k, Int32(root)), "broadcast") }
            }
        }
    }

    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) {
        forEachChunk(buffer.count) { start, n in
            watched("broadcast (\(n) floats)") { check(cmpi_bcast_f32(buffer.baseAddress! + start, n, Int32(root)), "broadcast") }
        }
    }

    public func gather(_ bytes: [UInt8], root: Int) -> [[UInt8]] {
        let counts = gatherCounts(bytes.count)
        var displs = [Int32](repeating: 0, count: size)
        for i in 1..<max(size, 1) { displs[i] = displs[i - 1] + counts[i - 1] }
        let total = Int(counts.reduce(0, +))
        var recv = [UInt8](repeating: 0, count: rank == root ? max(total, 1) : 1)
        bytes.withUnsafeBytes { s in
            recv.withUnsafeMutableBytes { r in
                watched("gather") {
                    check(cmpi_gatherv_bytes(s.baseAddress, Int32(bytes.count), r.baseAddress,
                                             counts, displs, Int32(root)), "gather")
                }
            }
        }
        guard rank == root else { return [] }
        return (0..<size).map { Array(recv[Int(displs[$0])..<Int(displs[$0] + counts[$0])]) }
    }

    public func allgather(_ bytes: [UInt8]) -> [[UInt8]] {
        let counts = gatherCounts(bytes.count)
        var displs = [Int32](repeating: 0, count: size)
        for i in 1..<max(size, 1) { displs[i] = displs[i - 1] + counts[i - 1] }
        let total = Int(counts.reduce(0, +))
        var recv = [UInt8](repeating: 0, count: max(total, 1))
        bytes.withUnsafeBytes { s in
            recv.withUnsafeMutableBytes { r in
                watched("allgather") {
                    check(cmpi_allgatherv_bytes(s.baseAddress, Int32(bytes.count), r.baseAddress,
                                                counts, displs), "allgather")
                }
            }
        }
        return (0..<size).map { Array(recv[Int(displs[$0])..<Int(displs[$0] + counts[$0])]) }
    }

    /// Every rank's byte count (an int64 allgather), as Int32 for the v-collectives.
    private func gatherCounts(_ count: Int) -> [Int32] {
        precondition(count < Int(Int32.max), "gather payload over 2 GiB")
        var mine = Int64(count)
        var all = [Int64](repeating: 0, count: size)
        withUnsafeBytes(of: &mine) { s in
            all.withUnsafeMutableBytes { r in
                watched("allgather (byte counts)") { check(cmpi_allgather_bytes(s.baseAddress, 8, r.baseAddress), "allgather") }
            }
        }
        return all.map { Int32($0) }
    }

    public func barrier() { watched("barrier") { check(cmpi_barrier(), "barrier") } }

    /// Request slots in use (CMPI keeps MPI_Request handles in a fixed table).
    private var pending: [Int32] = []
    private var pendingFloats = 0

    public func startAllreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) {
        forEachChunk(buffer.count) { start, n in
            if pending.count == Int(CMPI_MAX_REQUESTS) { finishAllreduces() }  // the shim's table is full: drain it
            let slot = Int32(pending.count)
            check(cmpi_iallreduce_sum_f32(buffer.baseAddress! + start, n, slot), "iallreduce")
            pending.append(slot)
            pendingFloats += Int(n)
        }
    }

    /// Per-rank counts of started reduce-scatters: MPI reads them until the request completes.
    private var pendingCounts: [UnsafeMutablePointer<Int32>] = []

    public func startReduceScatterSum(_ buffer: UnsafeBufferPointer<Float>, counts: [Int], into shard: UnsafeMutableBufferPointer<Float>) {
        precondition(counts.count == size && counts.reduce(0, +) == buffer.count && counts[rank] <= shard.count && buffer.count < Int(Int32.max))
        if pending.count == Int(CMPI_MAX_REQUESTS) { finishAllreduces() }
        let slot = Int32(pending.count)
        let c = UnsafeMutablePointer<Int32>.allocate(capacity: size)
        for (i, n) in counts.enumerated() { c[i] = Int32(n) }
        pendingCounts.append(c)
        check(cmpi_ireduce_scatter_sum_f32(buffer.baseAddress!, shard.baseAddress!, c, slot), "ireduce_scatter")
        pending.append(slot)
        pendingFloats += buffer.count
    }

    public func allgather(_ buffer: UnsafeMutableBufferPointer<Float>, counts: [Int]) {
        precondition(counts.count == size && counts.reduce(0, +) == buffer.count && buffer.count < Int(Int32.max))
        let c = counts.map { Int32($0) }
        var displs = [Int32](repeating: 0, count: size)
        for i in 1..<max(size, 1) { displs[i] = displs[i - 1] + c[i - 1] }
        watched("allgather (\(buffer.count) floats)") {
            check(cmpi_allgatherv_inplace_f32(buffer.baseAddress!, c, displs), "allgather")
        }
    }

    public func progressAllreduces() {
        for slot in pending { _ = cmpi_test(slot) }
    }

    public func finishAllreduces() {
        guard !pending.isEmpty else { return }
        watched("allreduce (\(pendingFloats) floats, \(pending.count) buckets)") {
            for slot in pending { check(cmpi_wait(slot), "wait") }
        }
        pending.removeAll(keepingCapacity: true)
        pendingFloats = 0
        pendingCounts.forEach { $0.deallocate() }
        pendingCounts.removeAll()
    }

    public func abortJob(code: Int32) -> Never {
        fflush(stdout)
        cmpi_abort(code)
        exit(code)  // not reached: MPI_Abort does not return
    }

    public func wallTime() -> Double { cmpi_wtime() }

    /// MPI counts are C ints: split anything larger into chunks (relevant past 2^31 elements).
    private func forEachChunk(_ count: Int, _ body: (Int, Int32) -> Void) {
        let chunk = Int(Int32.max / 2)
        var start = 0
        while start < count {
            let n = min(chunk, count - start)
            body(start, Int32(n))
            start += n
        }
    }
}
