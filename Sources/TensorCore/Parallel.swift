import COpenBLAS
import Foundation
import Synchronization

/// sft-dist's own threads: one small pool per process, used for every parallel loop of the
/// tensor core — GEMMs split into per-thread pieces (OpenBLAS itself then runs single-
/// threaded inside each piece), elementwise kernels, attention heads, the fused loss.
///
/// One pool for everything is the deliberate thread split: OpenBLAS's own pthreads busy-wait
/// after each call, so letting them run beside a second pool of ours would put three
/// spinning threads on two cores. With `threads == 1` (one rank per core, the cluster
/// layout) nothing is ever handed to another thread.
///
/// Only one thread (the one driving the model) starts parallel loops; a loop started from
/// inside a parallel body runs inline.
public enum Parallel {
    /// Threads per rank, including the calling one.
    public static var threads: Int {
        get { pool.size }
        set { pool.resize(max(1, newValue)) }
    }

    /// True while a parallel body runs (nested loops then run inline).
    public static var active: Bool { pool.running }

    /// Runs body(t) for t in 0..<threads concurrently (t = 0 on the calling thread); inside
    /// another parallel region, every t in turn on this thread (callers split work by t).
    public static func onEachThread(_ body: (Int) -> Void) {
        let n = pool.size
        if n == 1 || pool.running { for t in 0..<n { body(t) }; return }
        pool.run(body)
    }

    /// Splits 0..<count into one contiguous range per thread (multiples of `align`, at least
    /// `minChunk` long each) and runs them concurrently.
    public static func forRanges(_ count: Int, minChunk: Int = 1, align: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let parts = min(pool.size, max(1, count / max(minChunk, 1)))
        if parts <= 1 || pool.running { body(0..<count); return }
        pool.run { t in
            guard t < parts else { return }
            let r = split(count, parts: parts, index: t, align: align)
            if !r.isEmpty { body(r) }
        }
    }

    /// Row-local work over `rows` rows of `width` floats: rows split over the threads, at least
    /// ~16K floats per thread so small tensors stay on one thread.
    public static func forRows(_ rows: Int, width: Int, _ body: (Range<Int>) -> Void) {
        forRanges(rows, minChunk: max(1, 16384 / max(width, 1)), body)
    }

    /// Sums down the rows of a [rows, columns] matrix (bias and norm-weight gradients): the
    /// columns split over the threads in blocks of 8, each column's rows added in order by one
    /// thread, so the sums have the same bits at any thread count; under 64K elements, one thread.
    public static func forColumns(_ columns: Int, rows: Int, _ body: (Range<Int>) -> Void) {
        forRanges(columns, minChunk: rows * columns >= 65536 ? 64 : columns, align: 8, body)
    }

    /// Runs body(i) for every i in 0..<count, interleaved over the threads (i ≡ t mod threads);
    /// for work items of similar cost (attention heads).
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        guard count > 0 else { return }
        let n = min(pool.size, count)
        if n <= 1 || pool.running { for i in 0..<count { body(i) }; return }
        pool.run { t in
            var i = t
            while i < count { body(i); i += n }
        }
    }

    /// Piece `index` of `parts` near-equal contiguous pieces of 0..<count (boundaries on
    /// multiples of `align`).
    public static func split(_ count: Int, parts: Int, index: Int, align: Int = 1) -> Range<Int> {
        let units = (count + align - 1) / align
        let lo = units * index / parts * align, hi = units * (index + 1) / parts * align
        return min(lo, count)..<min(hi, count)
    }

    /// Starts with OpenBLAS's own thread setting (OPENBLAS_NUM_THREADS, else the core count),
    /// then turns OpenBLAS's threading off: from here on the pool is the only one.
    nonisolated(unsafe) static let pool: ThreadPool = {
        let n = Int(sftblas_get_num_threads())
        sftblas_set_num_threads(1)
        return ThreadPool(size: max(1, n))
    }()
}

/// A fixed set of worker threads that spin briefly on a generation counter, then park on a
/// condition variable. `run` hands every worker the same body and returns when all are done.
final class ThreadPool: @unchecked Sendable {
    private(set) var size: Int
    private(set) var running = false
    private let generation = Atomic<Int>(0)
    private let finished = Atomic<Int>(0)
    private var body: ((Int) -> Void)?
    private var workers: [Thread] = []
    private var stop = false
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()

    init(size: Int) {
        self.size = 1
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&cond, nil)
        resize(size)
    }

    func resize(_ n: Int) {
        precondition(!running, "Parallel.threads changed inside a parallel loop")
        if n == size && workers.count == n - 1 { return }
        // Stop the old workers, start n − 1 new ones.
        if !workers.isEmpty {
            // Count only the exits: `finished` still holds the last run's count.
            finished.store(0, ordering: .releasing)
            pthread_mutex_lock(&mutex); stop = true; pthread_cond_broadcast(&cond); pthread_mutex_unlock(&mutex)
            generation.add(1, ordering: .releasing)
            while finished.load(ordering: .acquiring) < workers.count { sched_yield() }
            workers = []
            stop = false
        }
        size = n
        let start = generation.load(ordering: .acquiring)
        for t in 1..<max(n, 1) {
            let th = Thread { [unowned self] in self.workerLoop(index: t, seen: start) }
            th.stackSize = 1 << 20
            th.start()
            workers.append(th)
        }
        finished.store(0, ordering: .releasing)
    }

    func run(_ body: (Int) -> Void) {
        withoutActuallyEscaping(body) { b in
            self.body = b
            running = true
            finished.store(0, ordering: .relaxed)
            pthread_mutex_lock(&mutex)
            generation.add(1, ordering: .releasing)
            pthread_cond_broadcast(&cond)
            pthread_mutex_unlock(&mutex)
            b(0)
            let others = size - 1
            while finished.load(ordering: .acquiring) < others {}
            running = false
            self.body = nil
        }
    }

    private func workerLoop(index: Int, seen start: Int) {
        var seen = start
        while true {
            // Spin a little (consecutive parallel loops are microseconds apart), then park.
            var g = generation.load(ordering: .acquiring)
            var spins = 0
            while g == seen && spins < 200_000 { spins += 1; g = generation.load(ordering: .acquiring) }
            if g == seen {
                pthread_mutex_lock(&mutex)
                while generation.load(ordering: .acquiring) == seen && !stop { pthread_cond_wait(&cond, &mutex) }
                pthread_mutex_unlock(&mutex)
                g = generation.load(ordering: .acquiring)
            }
            seen = g
            if stop { finished.add(1, ordering: .releasing); return }
            body?(index)
            finished.add(1, ordering: .releasing)
        }
    }
}
