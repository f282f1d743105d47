import Foundation
import Synchronization

extension BLAS {
    /// Address space OpenBLAS maps for one calling thread's work buffer (its BUFFER_SIZE on
    /// x86-64: 128 MiB, measured as the growth of VmSize at the first `cblas_sgemm`).
    public static let workBufferBytes = 128 << 20

    /// OpenBLAS maps a thread's work buffer at that thread's first product and keeps it; when
    /// the mapping fails — an address-space limit (`ulimit -v`, as batch systems such as SGE's
    /// `h_vmem` set) already used up by sft-dist's own buffers — it retries for ever at 100 %
    /// CPU: a rank that hangs with no message (under mpirun the watchdog then blamed a
    /// collective on another rank). So every pool thread makes its first product at start-up,
    /// while the address space is still free, and an allocation of sft-dist's that later does
    /// not fit fails with its own message (`CheckedAllocation`, exit 5). Returns the problem
    /// when the limit leaves no room even for the buffers (nil: taken).
    public static func takeWorkBuffers() -> String? {
        let threads = Parallel.threads
        let n = threads > 1 && !Parallel.active ? 384 : 256
        // The buffers, the products' operands, and 16 MiB.
        let needed = threads * (workBufferBytes + 3 * n * n * MemoryLayout<Float>.stride) + (16 << 20)
        if let left = MemoryBudget.addressSpaceBytes(), left < needed {
            return "out of memory: the address-space limit (ulimit -v) leaves \(CheckedAllocation.describe(bytes: left)), and OpenBLAS needs \(threads) × \(workBufferBytes >> 20) MiB of work buffer, one per thread, before anything else (raise the limit, or fewer threads: --threads, or OPENBLAS_NUM_THREADS)"
        }
        // Each pool thread makes a product above OpenBLAS's small-matrix path (which takes no
        // buffer). Built with thread-local buffer tables (Debian's), each thread maps its own;
        // with one shared table a new buffer is mapped only while every mapped one is in use,
        // so the products also overlap: each round every thread waits until all have arrived,
        // then runs ~1 ms of product; three rounds, for a thread descheduled through a whole
        // round (ranks oversubscribing the cores).
        let operands = CheckedAllocation.floats(3 * n * n * threads, for: "the start-up products that map OpenBLAS's work buffers")
        defer { CheckedAllocation.free(operands) }
        guard threads > 1, !Parallel.active else { warmProduct(size: n, operands: operands); return nil }
        for _ in 0..<3 {
            let arrived = Atomic<Int>(0)
            Parallel.onEachThread { t in
                arrived.add(1, ordering: .sequentiallyConsistent)
                while arrived.load(ordering: .sequentiallyConsistent) < threads { sched_yield() }
                warmProduct(size: n, operands: operands + 3 * n * n * t)
            }
        }
        return nil
    }

    /// C = A·B of `size`² zeros in `operands` (3·size² floats).
    private static func warmProduct(size n: Int, operands a: UnsafeMutablePointer<Float>) {
        call(false, false, n, n, n, 1, a, n, a + n * n, n, 0, a + 2 * n * n, n)
    }
}
