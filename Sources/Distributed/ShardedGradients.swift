import Foundation

/// ZeRO's gradient path (arXiv 1910.02054, sec. 5.2): the same buckets `GradientBuckets`
/// sums, reduce-scattered instead, so each rank receives only the summed part of every
/// bucket it owns (`ShardPlan`) into its gradient shard; started as backward finishes each
/// block (on the step's last micro-batch) and completed by `finish()`, always in plan order
/// on every rank, as MPI requires.
///
/// ZeRO-2 (`releasesGradients`): once a bucket's reduce-scatter is complete its full-size
/// gradient is no longer needed, so its pages go back to the system (madvise DONTNEED:
/// private anonymous pages read as zero afterwards, which is also the next step's zeroing).
/// Before starting the next block's buckets, backward waits for the previous block's, which
/// have had a whole block's backward to complete, and releases them: at most about two
/// blocks' gradients (plus those no block covers, e.g. the embeddings) are resident at once.
/// While micro-batches accumulate, the full gradient is resident, as it must be.
public final class ShardedGradients {
    public let plan: ShardPlan
    let comm: Communicator
    let grads: UnsafeMutablePointer<Float>
    /// This rank's parts of the pieces, in plan order (`ShardPlan.owned`).
    public let owned: [Range<Int>]
    /// The summed gradient of `owned`, part after part (`shardCount` floats).
    public let shard: UnsafeMutablePointer<Float>
    public let shardCount: Int
    private let shardOffsets: [Int]
    public let releasesGradients: Bool
    private var started: [Bool]
    /// Pieces started and not yet released (ZeRO-2).
    private var unreleased: [Int] = []
    private var secondsInBackward = 0.0

    public init(comm: Communicator, gradients: UnsafeMutablePointer<Float>, plan: ShardPlan, releasesGradients: Bool) {
        self.comm = comm
        self.plan = plan
        grads = gradients
        self.releasesGradients = releasesGradients
        owned = plan.owned(rank: comm.rank)
        var offsets: [Int] = [], at = 0
        for r in owned { offsets.append(at); at += r.count }
        shardOffsets = offsets
        shardCount = at
        // posix_memalign reports failure instead of trapping: out of memory is a message.
        var raw: UnsafeMutableRawPointer? = nil
        guard posix_memalign(&raw, 64, max(at, 1) * MemoryLayout<Float>.stride) == 0, let raw else {
            Fatal.fail("out of memory: cannot allocate the ZeRO gradient shard (\(at) floats)", code: Fatal.Code.outOfMemory)
        }
        shard = raw.bindMemory(to: Float.self, capacity: max(at, 1))
        shard.initialize(repeating: 0, count: max(at, 1))
        started = [Bool](repeating: false, count: plan.pieces.count)
    }

    deinit { free(shard) }

    /// Called from the tape when `range`'s gradients are final (a block's range).
    public func ready(_ range: Range<Int>) {
        let due = plan.pieces.indices.filter { !started[$0] && plan.pieces[$0].lowerBound >= range.lowerBound && plan.pieces[$0].upperBound <= range.upperBound }
        guard !due.isEmpty else { return }
        let t0 = comm.wallTime()
        if releasesGradients && !unreleased.isEmpty {
            comm.finishAllreduces()
            releaseStarted()
        }
        due.forEach(start)
        comm.progressAllreduces()
        secondsInBackward += comm.wallTime() - t0
    }

    /// Called after each backward kernel while reduce-scatters are outstanding.
    public func progress() {
        guard started.contains(true) else { return }
        let t0 = comm.wallTime()
        comm.progressAllreduces()
        secondsInBackward += comm.wallTime() - t0
    }

    /// Starts every piece not started yet, in plan order, and waits for all of them.
    public func finish() {
        for i in plan.pieces.indices where !started[i] { start(i) }
        comm.finishAllreduces()
        if releasesGradients { releaseStarted() }
        started = [Bool](repeating: false, count: plan.pieces.count)
    }

    /// Zeroes the full gradient buffer's pieces before a step (ZeRO-2: returns their pages,
    /// which read as zero, instead of writing zeros into them).
    public func zeroGradients() {
        for p in plan.pieces {
            if releasesGradients { release(p) } else { (grads + p.lowerBound).update(repeating: 0, count: p.count) }
        }
    }

    /// The updated parameter parts of every rank, to every rank (in place, piece by piece).
    public func allgatherParameters(_ values: UnsafeMutablePointer<Float>) {
        for p in plan.pieces {
            comm.allgather(UnsafeMutableBufferPointer(start: values + p.lowerBound, count: p.count), counts: plan.counts(p))
        }
    }

    /// `secondsInBackward` of the step just finished, and a fresh count for the next.
    public func takeSecondsInBackward() -> Double {
        defer { secondsInBackward = 0 }
        return secondsInBackward
    }

    private func start(_ i: Int) {
        started[i] = true
        unreleased.append(i)
        let p = plan.pieces[i]
        comm.startReduceScatterSum(UnsafeBufferPointer(start: grads + p.lowerBound, count: p.count), counts: plan.counts(p),
                                   into: UnsafeMutableBufferPointer(start: shard + shardOffsets[i], count: owned[i].count))
    }

    private func releaseStarted() {
        for i in unreleased { release(plan.pieces[i]) }
        unreleased.removeAll()
    }

    /// Zeroes `r` of the full gradient; whole pages inside it are returned to the system.
    private func release(_ r: Range<Int>) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let lo = UInt(bitPattern: grads + r.lowerBound), hi = UInt(bitPattern: grads + r.upperBound)
        let pageLo = (lo + UInt(page) - 1) / UInt(page) * UInt(page), pageHi = hi / UInt(page) * UInt(page)
        guard pageLo < pageHi else { (grads + r.lowerBound).update(repeating: 0, count: r.count); return }
        let head = Int(pageLo - lo) / MemoryLayout<Float>.stride, tail = Int(hi - pageHi) / MemoryLayout<Float>.stride
        (grads + r.lowerBound).update(repeating: 0, count: head)
        (grads + r.upperBound - tail).update(repeating: 0, count: tail)
        if madvise(UnsafeMutableRawPointer(bitPattern: pageLo), Int(pageHi - pageLo), MADV_DONTNEED) != 0 {
            UnsafeMutablePointer<Float>(bitPattern: pageLo)!.update(repeating: 0, count: Int(pageHi - pageLo) / MemoryLayout<Float>.stride)
        }
    }
}
