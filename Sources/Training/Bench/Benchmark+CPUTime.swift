#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Benchmark {
    /// CPU seconds this process has used, all threads (`CLOCK_PROCESS_CPUTIME_ID`). On a
    /// machine shared with other jobs a step's CPU time stays what the step costs while its
    /// wall time grows with the load; with one thread per rank it is the step's work.
    static func processCPUSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }
}
