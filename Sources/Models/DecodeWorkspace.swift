import TensorCore

/// The scratch memory of incremental decoding, owned by a `KVCache`: one block carved into
/// the buffers a decode call needs. It grows to the largest call (the prefill) and is then
/// reused, so the per-token loop allocates nothing and touches no fresh pages.
public final class DecodeWorkspace {
    private var base: UnsafeMutablePointer<Float>?
    private var capacity = 0

    public init() {}

    deinit { if let base { CheckedAllocation.free(base) } }

    /// Consecutive buffers of `sizes` floats each, 64-byte aligned, valid until the next call.
    /// Contents are whatever the previous call left: every user writes before it reads.
    public func carve(_ sizes: [Int]) -> [UnsafeMutablePointer<Float>] {
        let padded = sizes.map { ($0 + 15) / 16 * 16 }
        let total = padded.reduce(0, +)
        if total > capacity || base == nil {
            if let base { CheckedAllocation.free(base) }
            base = CheckedAllocation.floats(total, for: "decoding activations")
            capacity = total
        }
        var p = base!
        return padded.map { size in defer { p += size }; return p }
    }
}
