import Foundation

/// `RotaryKernels.tables`, built once per (head dimension, θ) instead of once per layer and
/// pass (30 times a forward at SmolLM2's shape, each a fresh pair of arrays the backward pass
/// frees again), and grown to the largest position asked for. Entry (p, i) depends only on p, i,
/// d and θ, so a longer table serves every shorter request with the same bits.
public final class RotaryTables {
    public static let shared = RotaryTables()

    private struct Key: Hashable { let headDim: Int, theta: UInt32 }
    private let lock = NSLock()
    private var tables: [Key: (maxPosition: Int, cos: [Float], sin: [Float])] = [:]

    /// cos and sin tables covering positions 0...maxPosition (possibly more), [·, d/2].
    public func tables(maxPosition: Int, headDim: Int, theta: Float) -> (cos: [Float], sin: [Float]) {
        lock.lock()
        defer { lock.unlock() }
        let key = Key(headDim: headDim, theta: theta.bitPattern)
        if let t = tables[key], t.maxPosition >= maxPosition { return (t.cos, t.sin) }
        let (c, s) = RotaryKernels.tables(maxPosition: maxPosition, headDim: headDim, theta: theta)
        tables[key] = (maxPosition, c, s)
        return (c, s)
    }
}
