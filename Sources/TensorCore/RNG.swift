/// Deterministic random numbers: xoshiro256** seeded through SplitMix64.
///
/// Every stream (init, data order, sampling, per-rank dropout of tokens…) is its own RNG
/// derived from (seed, purpose, rank), and its state is four UInt64s, so checkpoints can
/// store it and a resumed run draws exactly the numbers the uninterrupted one would have.
public struct RNG: Sendable, Equatable {
    public var state: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var sm = SplitMix64(seed: seed)
        state = (sm.next(), sm.next(), sm.next(), sm.next())
    }

    /// A stream for one purpose, independent of the others.
    public init(seed: UInt64, stream: UInt64) {
        self.init(seed: seed ^ (stream &* 0xD1B5_4A32_D192_ED03) &+ stream)
    }

    public static func == (a: RNG, b: RNG) -> Bool {
        a.state.0 == b.state.0 && a.state.1 == b.state.1 && a.state.2 == b.state.2 && a.state.3 == b.state.3
    }

    @inlinable
    public mutating func next() -> UInt64 {
        let result = ((state.1 &* 5) << 7 | (state.1 &* 5) >> 57) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = (state.3 << 45) | (state.3 >> 19)
        return result
    }

    /// Uniform in [0, 1) with 24 bits, exactly representable as Float.
    @inlinable
    public mutating func uniform() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    @inlinable
    public mutating func uniformDouble() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }

    /// Uniform integer in 0..<n (Lemire's multiply-shift, bias negligible for our n).
    @inlinable
    public mutating func below(_ n: Int) -> Int {
        Int(UInt64(n).multipliedFullWidth(by: next()).high)
    }

    /// Standard normal by Box–Muller.
    public mutating func normal() -> Float {
        let u1 = max(uniformDouble(), 1e-300)
        let u2 = uniformDouble()
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }

    public var words: [UInt64] { [state.0, state.1, state.2, state.3] }
    public init(words: [UInt64]) {
        precondition(words.count == 4)
        state = (words[0], words[1], words[2], words[3])
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
