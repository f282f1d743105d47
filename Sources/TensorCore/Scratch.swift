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
            let p = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
            buffers[slot] = p.bindMemory(to: Float.self, capacity: max(count, 1))
            sizes[slot] = max(count, 1)
        }
        return buffers[slot]!
    }
}
