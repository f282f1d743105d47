/// Gradient allreduce in buckets, overlapped with the backward pass.
///
/// The model marks each transformer block's parameter range; backward reaches block i's mark
/// once block i's gradients are final (on the last micro-batch of the step), and its sum
/// starts there, non-blocking, while the blocks below are still back-propagating. Whatever no
/// mark covers (embeddings, final norm) and any bucket a rank never reached (a rank with no
/// micro-batch this step runs no backward) is started by `finish()`, always in the same
/// order, so every rank issues the same collectives in the same sequence (MPI requires it).
/// Sums, not averages: losses are already divided by global counts. Only `regions` (the
/// trainable ranges) are ever summed: frozen gradients are never sent.
public final class GradientBuckets {
    let comm: Communicator
    let base: UnsafeMutablePointer<Float>
    let regions: [Range<Int>]
    private var started: Set<Int> = []     // lower bounds of started ranges
    private var order: [Range<Int>] = []   // ranges in the order they were started
    /// Seconds spent inside MPI during backward (starting sums, letting them progress) since
    /// the last `finish()`: part of the allreduce's cost that the step's compute time hides.
    private var secondsInBackward = 0.0

    /// Floats per non-blocking sum: a bucket larger than this is started as several sums.
    /// Open MPI's non-blocking sum allocates a temporary as large as its buffer; 4 MiB
    /// pieces keep that small beside a 12 MiB embedding bucket, at no measurable cost in time.
    let maxFloatsPerSum: Int

    public convenience init(comm: Communicator, gradients: UnsafeMutablePointer<Float>, count: Int, maxFloatsPerSum: Int = 1 << 20) {
        self.init(comm: comm, gradients: gradients, regions: [0..<count], maxFloatsPerSum: maxFloatsPerSum)
    }

    /// `regions`: sorted, disjoint ranges of the buffer to sum.
    public init(comm: Communicator, gradients: UnsafeMutablePointer<Float>, regions: [Range<Int>], maxFloatsPerSum: Int = 1 << 20) {
        self.comm = comm
        base = gradients
        self.regions = regions.filter { !$0.isEmpty }
        self.maxFloatsPerSum = max(1, maxFloatsPerSum)
    }

    /// Called from the tape when `range`'s gradients are final.
    public func ready(_ range: Range<Int>) {
        let pieces = summed(range).filter { !started.contains($0.lowerBound) }
        guard !pieces.isEmpty else { return }
        let t0 = comm.wallTime()
        pieces.forEach(start)
        comm.progressAllreduces()
        secondsInBackward += comm.wallTime() - t0
    }

    /// Called after each backward kernel while sums are outstanding.
    public func progress() {
        guard !order.isEmpty else { return }
        let t0 = comm.wallTime()
        comm.progressAllreduces()
        secondsInBackward += comm.wallTime() - t0
    }

    /// Starts what is left — `canonical` ranges (the marks, in backward order) not yet
    /// started, then every gap — and waits for all of them.
    public func finish(canonical: [Range<Int>]) {
        for r in canonical.flatMap(summed) where !started.contains(r.lowerBound) { start(r) }
        let covered = order.sorted { $0.lowerBound < $1.lowerBound }
        for region in regions {
            var at = region.lowerBound
            for r in covered where r.upperBound > region.lowerBound && r.lowerBound < region.upperBound {
                if r.lowerBound > at { start(at..<r.lowerBound) }
                at = max(at, r.upperBound)
            }
            if at < region.upperBound { start(at..<region.upperBound) }
        }
        comm.finishAllreduces()
        started.removeAll()
        order.removeAll()
    }

    /// `secondsInBackward` of the step just finished, and a fresh count for the next.
    public func takeSecondsInBackward() -> Double {
        defer { secondsInBackward = 0 }
        return secondsInBackward
    }

    /// The parts of `range` inside the summed regions.
    private func summed(_ range: Range<Int>) -> [Range<Int>] {
        regions.compactMap { r in
            let lo = max(r.lowerBound, range.lowerBound), hi = min(r.upperBound, range.upperBound)
            return lo < hi ? lo..<hi : nil
        }
    }

    private func start(_ r: Range<Int>) {
        started.insert(r.lowerBound)
        order.append(r)
        var at = r.lowerBound
        while at < r.upperBound {
            let n = min(maxFloatsPerSum, r.upperBound - at)
            comm.startAllreduceSum(UnsafeMutableBufferPointer(start: base + at, count: n))
            at += n
        }
    }
}
