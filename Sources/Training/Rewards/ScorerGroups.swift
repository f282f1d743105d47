import Foundation

/// The process groups of the external scorer batches running now, killed when this process is
/// told to stop: SIGTERM (`kill`, or mpirun passing on Ctrl-C or its own SIGTERM to every rank,
/// or a Slurm time limit), SIGINT, SIGHUP. Each batch runs in a process group of its own
/// (`ScorerProcess`), which keeps a scorer's children within reach of one kill but also out of
/// reach of the terminal's and mpirun's signals: without this a hung scorer went on running
/// after the job had ended. SIGKILL cannot be caught: a rank killed with it leaves its batch
/// running until the scorer itself ends (a scorer should exit when its input closes).
enum ScorerGroups {
    static let capacity = 64
    static let signals: [Int32] = [SIGTERM, SIGINT, SIGHUP]
    /// Leaders' pids (0: a free slot); read by the signal handler, so plain memory.
    nonisolated(unsafe) static let slots: UnsafeMutablePointer<pid_t> = {
        let p = UnsafeMutablePointer<pid_t>.allocate(capacity: capacity)
        p.initialize(repeating: 0, count: capacity)
        return p
    }()
    /// The handlers before ours, one per entry of `signals`, called after the groups are killed.
    nonisolated(unsafe) static let previous: UnsafeMutablePointer<__sighandler_t?> = {
        let p = UnsafeMutablePointer<__sighandler_t?>.allocate(capacity: 3)
        p.initialize(repeating: nil, count: 3)
        return p
    }()
    nonisolated(unsafe) private static var installed = false
    private static let lock = NSLock()

    /// Call right after the leader is spawned.
    static func add(_ pid: pid_t) {
        lock.lock()
        defer { lock.unlock() }
        if !installed {
            installed = true
            _ = slots; _ = previous   // initialised here, never first in the handler
            for (i, s) in signals.enumerated() {
                previous[i] = signal(s, killScorerGroups)
                // A signal the process was started ignoring (nohup's SIGHUP, SIGINT of `cmd &`
                // in a script) stays ignored: it must not stop the job's scorers either.
                if let p = previous[i], unsafeBitCast(p, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self) { signal(s, SIG_IGN) }
            }
        }
        for i in 0..<capacity where slots[i] == 0 { slots[i] = pid; return }
    }

    /// Call once the leader is reaped (its group killed).
    static func remove(_ pid: pid_t) {
        lock.lock()
        defer { lock.unlock() }
        for i in 0..<capacity where slots[i] == pid { slots[i] = 0; return }
    }
}

/// Kills every running scorer group, then lets the signal do what it did before (by default,
/// end the process). Only async-signal-safe calls: kill, signal, raise.
private let killScorerGroups: @convention(c) (Int32) -> Void = { sig in
    for i in 0..<ScorerGroups.capacity {
        let pid = ScorerGroups.slots[i]
        if pid > 0 { kill(-pid, SIGKILL) }
    }
    let index = sig == SIGTERM ? 0 : sig == SIGINT ? 1 : 2
    signal(sig, ScorerGroups.previous[index] ?? SIG_DFL)
    raise(sig)
}
