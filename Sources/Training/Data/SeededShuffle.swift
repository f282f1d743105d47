import TensorCore

/// A permutation of 0..<count that depends only on (count, seed): Fisher–Yates driven by
/// SplitMix64. The batch sampler draws one per epoch (e.g. seed mixed with the epoch), and
/// every rank computes the same one without communicating.
public func seededPermutation(count: Int, seed: UInt64) -> [Int] {
    precondition(count >= 0, "seededPermutation: negative count")
    var order = Array(0..<count)
    var rng = SplitMix64(seed: seed)
    var i = count - 1
    while i > 0 {
        let j = rng.below(i + 1)
        order.swapAt(i, j)
        i -= 1
    }
    return order
}
