import Foundation

/// Ends the job when a collective makes no progress for too long.
///
/// When a rank dies (node lost, OOM killer, `kill -9`), Open MPI's launcher usually notices
/// and tears the job down within a second or two. When a rank *hangs* instead (stopped, stuck
/// on a dead NFS mount, a network partition the runtime does not see), the other ranks wait
/// in their next collective forever and a cluster allocation burns silently. The watchdog
/// bounds that: the main thread marks entry and exit of every collective (two lock-protected
/// stores, nothing on the hot path that could slow a collective), and a background thread
/// that wakes four times a second aborts the job if one collective has been waiting longer
/// than `seconds`.
///
/// The abort is MPI_Abort called from the watchdog thread. With MPI_THREAD_FUNNELED only the
/// main thread should call MPI, but the main thread is blocked inside the collective and can
/// never return to do it; Open MPI's abort goes to the launcher (PMIx), not through the
/// blocked communicator, so it works from here. If it did not end the process within a few
/// seconds, the thread exits the process itself, which the launcher also treats as a failed
/// job.
public final class Watchdog: @unchecked Sendable {
    public let seconds: Double
    private let lock = NSLock()
    private var current: (name: String, since: Double)?
    private var fired = false
    private let clock: () -> Double
    private let abort: (String) -> Void

    /// `rank` staggers the deadline slightly (up to 2 s) so that when every survivor times out
    /// together, the lowest rank usually prints and aborts first and the message appears once.
    /// `monitored: false` (tests) starts no thread: the caller drives `excuse` and `expired`.
    public init(seconds: Double, rank: Int, clock: @escaping () -> Double, abort: @escaping (String) -> Void,
                monitored: Bool = true) {
        self.seconds = seconds
        self.clock = clock
        self.abort = abort
        guard monitored else { return }
        let deadline = seconds + 0.5 * Double(min(rank, 4))
        let thread = Thread { [weak self] in
            var last = clock()
            while let me = self {
                let now = me.clock()
                me.excuse(frozen: now - last - Self.tick)
                last = now
                if me.expired(after: deadline) { return }
                Thread.sleep(forTimeInterval: Self.tick)
            }
        }
        thread.name = "sft-dist-watchdog"
        thread.start()
    }

    /// Marks the start of a collective (main thread).
    @inline(__always)
    public func enter(_ name: String) {
        let now = clock()
        lock.lock(); current = (name, now); lock.unlock()
    }

    /// Marks its end.
    @inline(__always)
    public func leave() {
        lock.lock(); current = nil; lock.unlock()
    }

    /// Runs `body` as the collective `name`.
    @inline(__always)
    public func guarding<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
        enter(name)
        defer { leave() }
        return try body()
    }

    static let tick = 0.25

    /// Time in which the watchdog's own thread did not run — the process was stopped (SIGSTOP,
    /// a suspended node) — is not time this rank waited for the others: counted, a rank stopped
    /// past the deadline blamed them the moment it was continued (Open MPI continues a stopped
    /// rank to kill it when another aborts, so the job's one message appeared twice). Gaps
    /// under a second are scheduling and count.
    func excuse(frozen: Double) {
        guard frozen > 1 else { return }
        lock.lock()
        if let c = current { current = (c.name, c.since + frozen) }
        lock.unlock()
    }

    /// True once the watchdog has fired (the thread then stops).
    func expired(after deadline: Double) -> Bool {
        lock.lock()
        let c = current, already = fired
        lock.unlock()
        guard !already, let c, clock() - c.since > deadline else { return false }
        lock.lock(); fired = true; lock.unlock()
        // A limit under a second is said as given (--watchdog 0.0001 read "for 0 s").
        let waited = seconds >= 1 ? "\(Int(seconds.rounded()))" : String(format: "%g", seconds)
        abort("no progress in collective \(c.name) for \(waited) s (a rank may have died or hung); aborting")
        return true
    }
}
