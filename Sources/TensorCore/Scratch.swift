import Glibc

/// Grow-only scratch buffers for kernels that need a little temporary memory (per-thread
/// partial sums, an attention head's dS): allocated on first use at the largest size asked
/// for, then reused, so the step loop does not allocate. Kernels run one at a time (only
/// the driving thread starts them), so each slot has one user at a time.
public final class Scratch: @unchecked Sendable {
    public static let shared = Scratch()
    private var buffers: [UnsafeMutablePointer<Float>?] = Array(repeating: nil, count: 16)
    private var sizes: [Int] = Array(repeating: 0, count: 16)

    /// At least `count` floats, uninitialised, valid until the next request for `slot`.
    public func floats(slot: Int, count: Int) -> UnsafeMutablePointer<Float> {
        if sizes[slot] < count || buffers[slot] == nil {
            buffers[slot]?.deallocate()
            let p = Self.allocate(floats: max(count, 1))
            buffers[slot] = p.bindMemory(to: Float.self, capacity: max(count, 1))
            sizes[slot] = max(count, 1)
        }
        return buffers[slot]!
    }

    /// Frees `slot`'s buffer (the next request allocates afresh): for a large transient
    /// buffer that would otherwise stay resident through the rest of the step.
    public func release(slot: Int) {
        buffers[slot]?.deallocate()
        buffers[slot] = nil
        sizes[slot] = 0
    }

    /// 64-byte aligned; from 4 MiB up, 2 MiB aligned and marked for transparent huge pages,
    /// so a buffer that is freed and allocated again each pass (`release`) faults in 2 MiB
    /// at a time instead of 4 KiB.
    private static func allocate(floats: Int) -> UnsafeMutableRawPointer {
        let bytes = floats * 4
        guard bytes >= 4 << 20 else { return UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64) }
        let p = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 2 << 20)
        _ = madvise(p, bytes, MADV_HUGEPAGE)
        return p
    }
}
