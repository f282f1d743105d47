import TensorCore

/// `--selection random`: `keep` candidates of the pool uniformly at random, seeded by (seed,
/// step) — the equal-budget baseline for the other selectors (same pool, same number of
/// trained examples, no scoring pass).
public final class RandomSelector: CandidateSelector {
    public let name = "random"
    public let scorer: CandidateScorer? = nil
    public init() {}

    public func select(_ pool: SelectionPool) -> SelectionDecision {
        var rng = RNG(seed: pool.seed &+ UInt64(pool.step) &* 0x9E37_79B9_7F4A_7C15, stream: 13)
        var order = Array(pool.candidates.indices)
        let k = min(pool.keep, order.count)
        for i in 0..<k { order.swapAt(i, i + rng.below(order.count - i)) }  // partial Fisher–Yates
        return SelectionDecision(selected: Array(order.prefix(k)).sorted())
    }
}
