/// SplitMix64 (Steele, Lea & Flood 2014): a 64-bit state, one add and three mix steps.
///
/// Seeds `RNG`, and drives data order (`seededPermutation`) because it is fully specified
/// here: `Int.random(in:using:)` and `shuffle(using:)` leave their algorithms to the standard
/// library, which may change between Swift releases and silently reorder a resumed run's
/// batches.
public struct SplitMix64: RandomNumberGenerator, Sendable, Equatable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in 0..<bound, exactly unbiased (Lemire's multiply-shift with rejection).
    public mutating func below(_ bound: Int) -> Int {
        precondition(bound > 0, "SplitMix64.below: bound must be positive")
        let n = UInt64(bound)
        var product = n.multipliedFullWidth(by: next())
        if product.low < n {
            let threshold = (0 &- n) % n
            while product.low < threshold {
                product = n.multipliedFullWidth(by: next())
            }
        }
        return Int(product.high)
    }
}
