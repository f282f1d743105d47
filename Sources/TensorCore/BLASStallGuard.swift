import Foundation
import Synchronization

/// Ends the process when one matrix product makes no progress for too long. OpenBLAS maps a
/// work buffer for a thread the first time it needs one and, when the mapping fails (an
/// address-space limit, `ulimit -v`, reached by sft-dist's own buffers), retries for ever at
/// 100 % CPU: without this, a rank spun silently until the job's time ran out (one rank of
/// several: the others' watchdog then blamed a collective). `BLAS.takeWorkBuffers` maps the
/// buffers at start-up, which prevents it with one thread per rank; with several threads
/// OpenBLAS was still seen to map one later. Every `cblas_sgemm` counts as in flight while
/// it runs; a thread that wakes once a second fires when products are in flight and none has
/// finished for `seconds` (time the process was stopped, SIGSTOP, does not count).
public enum BLASStallGuard {
    static let inFlight = Atomic<Int>(0)
    static let finished = Atomic<Int>(0)
    /// The limit in milliseconds (0: off); `start` again changes it (`train` reads its recipe's
    /// `watchdog_seconds` after start-up).
    static let limitMilliseconds = Atomic<Int>(0)
    nonisolated(unsafe) private static var started = false

    /// Sets the limit (`seconds` ≤ 0: off) and starts the guard's thread the first time;
    /// `stalled` gets the message and must end the process.
    public static func start(seconds: Double, stalled: @escaping @Sendable (String) -> Void) {
        limitMilliseconds.store(seconds > 0 ? Int((seconds * 1000).rounded(.up)) : 0, ordering: .relaxed)
        guard seconds > 0, !started else { return }
        started = true
        let thread = Thread {
            var lastCount = finished.load(ordering: .relaxed)
            var since = Date().timeIntervalSince1970, lastTick = since
            while true {
                Thread.sleep(forTimeInterval: 1)
                let now = Date().timeIntervalSince1970
                // A gap much longer than the tick: the process was stopped; start over.
                if now - lastTick > 3 { since = now }
                lastTick = now
                let count = finished.load(ordering: .relaxed)
                if count != lastCount || inFlight.load(ordering: .relaxed) == 0 {
                    lastCount = count; since = now
                    continue
                }
                let limit = Double(limitMilliseconds.load(ordering: .relaxed)) / 1000
                if limit > 0 && now - since > limit {
                    stalled("no progress inside a matrix product for \(limit >= 1 ? "\(Int(limit.rounded()))" : String(format: "%g", limit)) s: OpenBLAS could not map a thread's work buffer (\(BLAS.workBufferBytes >> 20) MiB; an address-space limit such as ulimit -v is the usual cause) — raise the limit, or run with --threads 1, whose buffer is mapped at start-up")
                    return
                }
            }
        }
        thread.name = "sft-dist-blas-guard"
        thread.start()
    }
}
