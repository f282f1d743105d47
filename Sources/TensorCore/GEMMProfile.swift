import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `SFT_DIST_GEMM_PROFILE=1`: every `BLAS.gemm` call is timed and, when the process ends
/// (`reportIfEnabled`, called by the CLI before `_exit`, which runs no `atexit` handler), a table
/// by GEMM shape (M, N, K, transA, transB) goes to stderr: calls, seconds, GFLOP/s. The time is
/// the calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), so at one thread it is the GEMM's
/// work even on a shared machine; at more threads it is the driving thread's share only.
/// Off (the default) the cost is one load of a constant per call. Transposed copies
/// (`BLAS.transpose`, attention's Kᵀ and Vᵀ) are timed too, as K = 0 rows printed "copy",
/// and count in the total: what a GEMM saves by reading a copy is then weighed against it.
public enum GEMMProfile {
    nonisolated(unsafe) static var enabled: Bool = {
        guard let v = getenv("SFT_DIST_GEMM_PROFILE"), String(cString: v) != "0" else { return false }
        return true
    }()

    /// The table on stderr, if profiling is on and anything was timed.
    public static func reportIfEnabled() {
        if enabled { report() }
    }

    struct Shape: Hashable { let m, n, k: Int; let transA, transB: Bool }
    nonisolated(unsafe) private static var table: [Shape: [Double]] = [:]
    nonisolated(unsafe) private static var lock = pthread_mutex_t()
    nonisolated(unsafe) private static var lockReady: Bool = { pthread_mutex_init(&lock, nil); return true }()

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    static func record(_ shape: Shape, seconds: Double) {
        _ = lockReady
        pthread_mutex_lock(&lock)
        table[shape, default: []].append(seconds)
        pthread_mutex_unlock(&lock)
    }

    /// Per shape: calls, total seconds, GFLOP/s over all calls and over the median call (the
    /// steady state: a run's first pass also pays for first-touch page faults), share of the
    /// GEMM time.
    /// (shape, total seconds, every call's seconds sorted), the most time first.
    static func rows() -> [(Shape, Double, [Double])] {
        _ = lockReady
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return table.map { ($0.key, $0.value.reduce(0, +), $0.value.sorted()) }.sorted { $0.1 > $1.1 }
    }

    static func report() {
        let rows = rows()
        let total = rows.reduce(0) { $0 + $1.1 }
        var out = "GEMM profile (thread CPU time): M N K transA transB calls seconds GFLOP/s median-call-GFLOP/s share\n"
        for (s, seconds, times) in rows {
            let flop = 2.0 * Double(s.m) * Double(s.n) * Double(s.k)
            out += "\(s.k == 0 ? "copy" : "gemm") \(s.m) \(s.n) \(s.k) \(s.transA ? "T" : "N") \(s.transB ? "T" : "N") \(times.count) "
                + String(format: "%.4f %.1f %.1f %.2f%%\n", seconds, flop * Double(times.count) / max(seconds, 1e-12) / 1e9,
                         flop / max(times[times.count / 2], 1e-12) / 1e9, 100 * seconds / max(total, 1e-12))
        }
        out += String(format: "gemm total %.4f s\n", total)
        out += String(format: "gemm ceiling 1024^3 %.1f GFLOP/s (best of 7, thread CPU time)\n", ceiling())
        fputs(out, stderr)
    }

    /// The 1024³ rate by the same clock, so each shape's GFLOP/s compares with it directly.
    static func ceiling() -> Double {
        let n = 1024
        let a = UnsafeMutablePointer<Float>.allocate(capacity: 3 * n * n)
        defer { a.deallocate() }
        for i in 0..<(3 * n * n) { a[i] = Float(i % 7) * 0.01 }
        var best = Double.infinity
        for _ in 0..<7 {
            let t0 = now()
            BLAS.call(false, false, n, n, n, 1, a, n, a + n * n, n, 0, a + 2 * n * n, n)
            best = min(best, now() - t0)
        }
        return 2 * Double(n * n * n) / best / 1e9
    }
}
