import Foundation
import Synchronization

/// Ends the process when one matrix product makes no progress for too long, under an
/// address-space limit. OpenBLAS maps a work buffer for a thread the first time it needs one
/// and, when the mapping fails (`ulimit -v`, SGE's `h_vmem`, reached by sft-dist's own
/// buffers), retries for ever at 100 % CPU: without this a rank spun silently until the job's
/// time ran out (one rank of several: the others' watchdog then blamed a collective).
/// `BLAS.takeWorkBuffers` maps the buffers at start-up, which prevents it with one thread per
/// rank; with several threads OpenBLAS was still seen to map one more later. Armed only when
/// such a limit is set (the one known cause: without it a long product is only long): every
/// `cblas_sgemm` then counts as in flight while it runs, and a thread that wakes four times a
/// second fires when products are in flight and none has finished for half the `--watchdog`
/// limit — before the collective watchdog of the other ranks, so the message names the cause.
/// Time the process was stopped (SIGSTOP) does not count.
public enum BLASStallGuard {
    static let inFlight = Atomic<Int>(0)
    static let finished = Atomic<Int>(0)
    /// Read by every `BLAS.call`: counting costs nothing when no limit is set.
    nonisolated(unsafe) static var armed = false
    /// The limit in milliseconds (0: off); `start` again changes it (`train` reads its recipe's
    /// `watchdog_seconds` after start-up).
    static let limitMilliseconds = Atomic<Int>(0)
    nonisolated(unsafe) private static var started = false

    /// Sets the limit to half of `watchdog` seconds (≤ 0: off) and, under an address-space
    /// limit, starts the guard's thread the first time; `stalled` gets the message and must end
    /// the process at once.
    public static func start(watchdog seconds: Double, stalled: @escaping @Sendable (String) -> Void) {
        limitMilliseconds.store(seconds > 0 ? max(1, Int((seconds * 500).rounded(.up))) : 0, ordering: .relaxed)
        guard seconds > 0, !started, MemoryBudget.addressSpaceBytes() != nil else { return }
        started = true
        armed = true
        let thread = Thread {
            var lastCount = finished.load(ordering: .relaxed)
            var since = Date().timeIntervalSince1970, lastTick = since
            while true {
                Thread.sleep(forTimeInterval: 0.25)
                let now = Date().timeIntervalSince1970
                // A gap much longer than the tick: the process was stopped; start over.
                if now - lastTick > 2 { since = now }
                lastTick = now
                let count = finished.load(ordering: .relaxed)
                if count != lastCount || inFlight.load(ordering: .relaxed) == 0 {
                    lastCount = count; since = now
                    continue
                }
                let limit = Double(limitMilliseconds.load(ordering: .relaxed)) / 1000
                if limit > 0 && now - since > limit {
                    stalled("no progress inside a matrix product for \(String(format: "%g", limit)) s (half the --watchdog limit) under an address-space limit: OpenBLAS could not map a thread's work buffer (\(BLAS.workBufferBytes >> 20) MiB) and retries for ever — raise the limit (ulimit -v), or run with --threads 1, whose buffer is mapped at start-up")
                    return
                }
            }
        }
        thread.name = "sft-dist-blas-guard"
        thread.start()
    }
}
