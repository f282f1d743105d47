import Foundation

/// ZeRO's gradient path (arXiv 1910.02054, sec. 5.2): the same buckets `GradientBuckets`
/// sums, reduce-scattered instead, so each rank receives only the summed part of every
/// bucket it owns (`ShardPlan`) into its gradient shard; started as backward finishes each
/// block (on the step's last micro-batch; with ZeRO-2 on every one, below) and completed by
/// `finish()`, always in plan order on every rank, as MPI requires.
///
/// ZeRO-2 (`releasesGradients`): once a bucket's reduce-scatter is complete its full-size
/// gradient is no longer needed, so its pages go back to the system through `releasePages`
/// (the trainer passes `ZeroedPages.release`, madvise DONTNEED: private anonymous pages read
/// as zero afterwards, which is also the next step's zeroing; this layer sits below the tensor
/// core and cannot call it itself).
/// Before starting the next block's buckets, backward waits for the previous block's, which
/// have had a whole block's backward to complete, and releases them: at most about two
/// blocks' gradients (plus those no block covers, e.g. the embeddings) are resident at once.
///
/// ZeRO-2 under gradient accumulation (as DeepSpeed's stage 2 does): every micro-batch's
/// buckets are reduce-scattered and released as backward produces them (one `finish()` per
/// micro-batch, a "round"), so the full gradient never outlives a micro-batch; the shard
/// accumulates the rounds. Reduce-scatter overwrites its receive buffer, so before a later
/// round's piece starts, the shard's running sum is added into this rank's own part of the
/// piece (which that rank alone contributes): the round's sum then includes it, and no
/// second receive buffer is needed. Every rank must run the same number of rounds
/// (`finish()` with a zero gradient where a rank has fewer micro-batches).
///
/// ZeRO-1 keeps the full gradient, so each rank's summed parts go back into it, at their own
/// places (the pieces' inputs are no longer needed once reduced): each reduce-scatter receives
/// into a staging buffer bounded by this rank's share of the floats in flight, copied home
/// when it completes. The shard then costs no memory of its own — 4N + 4N + 8N/R bytes per
/// rank with the moments, the figure of arXiv 1910.02054 — where a separate buffer added 4N/R.
///
/// Open MPI's non-blocking reduce-scatter (libnbc: a binomial reduce to rank 0, then a
/// scatter) allocates two temporaries of the whole piece, and rank 0 writes both: 8 bytes per
/// float in flight, twice what the gradient itself takes. So no more than
/// `maxFloatsInFlight` are started at once: before a piece that would pass it, the ones in
/// flight are completed (and with ZeRO-2 released). Without the bound, `finish()` started the
/// embeddings' pieces together: 40 MiB held by libnbc for gpt2-mini at 4 ranks (heaptrack),
/// and a gradient-sync peak 200 MiB above backward's on the SmolLM2-135M shape (README).
public final class ShardedGradients {
    public let plan: ShardPlan
    let comm: Communicator
    let grads: UnsafeMutablePointer<Float>
    /// This rank's parts of the pieces, in plan order (`ShardPlan.owned`).
    public let owned: [Range<Int>]
    /// ZeRO-2: the summed gradient of `owned`, part after part (`shardCount` floats). ZeRO-1:
    /// the staging buffer the reduce-scatters in flight receive into (`stagingCount` floats);
    /// the summed parts live in the full gradient at `owned`.
    private let shard: UnsafeMutablePointer<Float>
    public let shardCount: Int
    /// Floats of `shard` (ZeRO-1: the staging bound).
    public let stagingCount: Int
    /// ZeRO-1: (piece, staging offset) of the reduce-scatters in flight, copied home on completion.
    private var staged: [(piece: Int, at: Int)] = []
    private let shardOffsets: [Int]
    public let releasesGradients: Bool
    /// ZeRO-2: zeroes a range of the full gradient, returning its whole pages; nil with ZeRO-1.
    private let releasePages: ((UnsafeMutablePointer<Float>, Range<Int>) -> Void)?
    private var started: [Bool]
    /// Pieces started and not yet released (ZeRO-2).
    private var unreleased: [Int] = []
    /// ZeRO-2: the shard already holds an earlier round's sum of this step (it accumulates).
    private var accumulating = false
    /// ZeRO-2: rounds (reduce-scatters of the whole gradient) completed since `zeroGradients()`.
    public private(set) var roundsThisStep = 0
    private var secondsInBackward = 0.0
    /// Floats of the pieces started and not yet completed.
    private var inFlight = 0
    let maxFloatsInFlight: Int

    /// `releasePages` nil keeps the full gradient (ZeRO-1); given, each reduced piece is
    /// released with it (ZeRO-2).
    public init(comm: Communicator, gradients: UnsafeMutablePointer<Float>, plan: ShardPlan,
                releasePages: ((UnsafeMutablePointer<Float>, Range<Int>) -> Void)?, maxFloatsInFlight: Int = 1 << 21) {
        self.comm = comm
        self.maxFloatsInFlight = max(1, maxFloatsInFlight)
        self.plan = plan
        grads = gradients
        self.releasePages = releasePages
        releasesGradients = releasePages != nil
        owned = plan.owned(rank: comm.rank)
        var offsets: [Int] = [], at = 0
        for r in owned { offsets.append(at); at += r.count }
        shardOffsets = offsets
        shardCount = at
        // ZeRO-1's staging: this rank's parts of the pieces in flight at once, whose pieces total
        // at most `maxFloatsInFlight` (or one larger piece started alone): at most the largest
        // share this rank has of any piece (≈ 1/R) times that.
        let largest = plan.pieces.map(\.count).max() ?? 0
        let share = zip(owned, plan.pieces).map { Double($0.count) / Double(max($1.count, 1)) }.max() ?? 0
        let staging = Int((share * Double(max(self.maxFloatsInFlight, largest))).rounded(.up))
        let floats = max(1, releasePages != nil ? at : min(at, staging))
        stagingCount = floats
        // posix_memalign reports failure instead of trapping: out of memory is a message.
        var raw: UnsafeMutableRawPointer? = nil
        guard posix_memalign(&raw, 64, floats * MemoryLayout<Float>.stride) == 0, let raw else {
            Fatal.fail("out of memory: cannot allocate the ZeRO gradient shard (\(floats) floats)", code: Fatal.Code.outOfMemory)
        }
        shard = raw.bindMemory(to: Float.self, capacity: floats)
        shard.initialize(repeating: 0, count: floats)
        started = [Bool](repeating: false, count: plan.pieces.count)
    }

    deinit { free(shard) }

    /// Called from the tape when `range`'s gradients are final (a block's range).
    public func ready(_ range: Range<Int>) {
        let due = plan.pieces.indices.filter { !started[$0] && plan.pieces[$0].lowerBound >= range.lowerBound && plan.pieces[$0].upperBound <= range.upperBound }
        guard !due.isEmpty else { return }
        let t0 = comm.wallTime()
        if releasesGradients && !unreleased.isEmpty { complete() }
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

    /// Starts every piece not started yet, in plan order, and waits for all of them. With
    /// ZeRO-2 this ends a round: the full gradient is released and the next round accumulates.
    public func finish() {
        for i in plan.pieces.indices where !started[i] { start(i) }
        complete()
        unreleased.removeAll()
        started = [Bool](repeating: false, count: plan.pieces.count)
        accumulating = releasesGradients
        roundsThisStep += 1
    }

    /// Zeroes the full gradient buffer's pieces before a step (ZeRO-2: returns their pages,
    /// which read as zero, instead of writing zeros into them); the shard starts afresh.
    public func zeroGradients() {
        for p in plan.pieces {
            if let releasePages { releasePages(grads, p) } else { (grads + p.lowerBound).update(repeating: 0, count: p.count) }
        }
        accumulating = false
        roundsThisStep = 0
    }

    /// The summed gradient of the parameters `range` (inside one of `owned`) whose moments start
    /// at `moment` (its offset in the shard, part after part): where the optimizer reads it.
    public func summedGradient(_ range: Range<Int>, moment: Int) -> UnsafePointer<Float> {
        releasesGradients ? UnsafePointer(shard + moment) : UnsafePointer(grads + range.lowerBound)
    }

    /// This rank's summed gradient, part after part (`shardCount` floats).
    public func shardValues() -> [Float] {
        if releasesGradients { return Array(UnsafeBufferPointer(start: shard, count: shardCount)) }
        return owned.flatMap { Array(UnsafeBufferPointer(start: grads + $0.lowerBound, count: $0.count)) }
    }

    /// ‖this rank's summed gradient‖², part after part.
    public func shardSquaredNorm(_ norm: (UnsafePointer<Float>, Int) -> Double) -> Double {
        if releasesGradients { let n = norm(shard, shardCount); return n * n }
        return owned.reduce(0.0) { sum, r in let n = norm(grads + r.lowerBound, r.count); return sum + n * n }
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

    /// Waits for every piece in flight; ZeRO-2 releases their full-size gradient.
    private func complete() {
        comm.finishAllreduces()
        inFlight = 0
        for (i, at) in staged { (grads + owned[i].lowerBound).update(from: shard + at, count: owned[i].count) }
        staged.removeAll(keepingCapacity: true)
        if releasesGradients { releaseStarted() }
    }

    private func start(_ i: Int) {
        let p = plan.pieces[i]
        if inFlight > 0 && inFlight + p.count > maxFloatsInFlight { complete() }
        started[i] = true
        unreleased.append(i)
        inFlight += p.count
        if accumulating {  // this round's sum includes the earlier rounds' (see the type's comment)
            let mine = grads + owned[i].lowerBound, sum = shard + shardOffsets[i]
            for j in 0..<owned[i].count { mine[j] += sum[j] }
        }
        var into = shard + shardOffsets[i]
        if !releasesGradients {  // ZeRO-1: staged after the pieces in flight, copied home by complete()
            let at = staged.last.map { $0.at + owned[$0.piece].count } ?? 0
            precondition(at + owned[i].count <= stagingCount, "ShardedGradients: staging bound exceeded")
            into = shard + at
            staged.append((i, at))
        }
        comm.startReduceScatterSum(UnsafeBufferPointer(start: grads + p.lowerBound, count: p.count), counts: plan.counts(p),
                                   into: UnsafeMutableBufferPointer(start: into, count: owned[i].count))
    }

    private func releaseStarted() {
        for i in unreleased { releasePages?(grads, plan.pieces[i]) }
        unreleased.removeAll()
    }
}
