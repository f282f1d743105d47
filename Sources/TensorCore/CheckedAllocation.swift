#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Float buffers that fail with a message instead of a trap.
///
/// `UnsafeMutablePointer.allocate` traps when the allocator returns NULL, which on a cluster
/// shows up as a bare "Illegal instruction" on one rank while the others hang in the next
/// collective. Large buffers (parameters, gradients, activations) come from here instead: on
/// failure the message names the size and what it was for, and `failureHandler` ends the job.
/// TensorCore cannot import Distributed, so the CLI installs a handler that goes through
/// `Fatal.fail` (one line, MPI_Abort); the default prints and exits.
public enum CheckedAllocation {
    /// Called with a one-line message when an allocation fails; must not return.
    nonisolated(unsafe) public static var failureHandler: (String) -> Never = { message in
        fputs("sft-dist: error: \(message)\n", stderr)
        // Not `exit`: OpenBLAS's finalizer can wait for ever on a thread that is itself
        // failing to map its buffer under the same memory limit.
        fflush(nil)
        _exit(5)
    }

    /// `count` floats (at least one), 64-byte aligned, zero-filled. Free with `free(_:)`.
    public static func floats(_ count: Int, for purpose: @autoclosure () -> String) -> UnsafeMutablePointer<Float> {
        let (raw, bytes) = allocate(floats: count, for: purpose())
        memset(raw, 0, bytes)
        return raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    /// `count` floats (at least one) of untouched memory and their size in bytes, or the
    /// failure handler's message naming `purpose`.
    private static func allocate(floats count: Int, for purpose: @autoclosure () -> String) -> (UnsafeMutableRawPointer, Int) {
        let (bytes, overflow) = max(count, 1).multipliedReportingOverflow(by: MemoryLayout<Float>.stride)
        var raw: UnsafeMutableRawPointer? = nil
        // posix_memalign reports failure instead of trapping; 64 bytes keeps SIMD loads aligned.
        if overflow || posix_memalign(&raw, 64, bytes) != 0 || raw == nil {
            failureHandler("out of memory: cannot allocate \(describe(bytes: overflow ? Int.max : bytes)) for \(purpose())")
        }
        return (raw!, bytes)
    }

    /// Asks for `count` floats and gives them back at once, untouched: before a Swift array of
    /// that size, whose failed allocation traps with no message (`Fatal error: failed to
    /// allocate`), so that an allocation that cannot succeed ends with one line (exit 5) instead.
    public static func probe(floats count: Int, for purpose: @autoclosure () -> String) {
        // Untouched (no memset): the pages are never committed.
        let (raw, _) = allocate(floats: count, for: purpose())
        #if canImport(Glibc)
        Glibc.free(raw)
        #else
        Darwin.free(raw)
        #endif
    }

    public static func free(_ pointer: UnsafeMutablePointer<Float>) {
        #if canImport(Glibc)
        Glibc.free(pointer)
        #else
        Darwin.free(pointer)
        #endif
    }

    /// "1.5 GiB", "12.0 MiB", "512 bytes".
    public static func describe(bytes: Int) -> String {
        let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var value = Double(bytes), unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(bytes) bytes" : "\((value * 10).rounded() / 10) \(units[unit])"
    }
}
