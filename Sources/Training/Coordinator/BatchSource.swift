import TensorCore

/// The coordinator's seam (docs/ARCHITECTURE.md, step 1): on rank 0, decides which examples make up
/// each optimizer step's global batch. Rollout producers and online selection (GRPO groups,
/// UDS, pseudo-labels) implement the same protocol later and see gathered per-sample
/// statistics through `observe`.
public protocol BatchSource: AnyObject {
    /// The global batch for `step`: indices into the training set (rank 0 calls this).
    func batch(step: Int) -> [Int]
    /// Per-sample statistics gathered from all ranks after a step (unused by uniform).
    func observe(step: Int, indices: [Int], statistics: [Float])
    /// Everything needed to continue exactly after a restart.
    var state: [UInt64] { get }
    func restore(_ state: [UInt64]) throws
}

extension BatchSource {
    public func observe(step: Int, indices: [Int], statistics: [Float]) {}
}

/// Uniform sampling without replacement: epochs of a seeded permutation, consumed
/// `batchSize` at a time across epoch boundaries. The batch of step s is a pure function of
/// (seed, s), so resuming needs no saved cursor and any rank count sees the same batches.
public final class UniformSampler: BatchSource {
    public let datasetSize: Int
    public let batchSize: Int
    public let seed: UInt64
    private var cachedEpoch = -1
    private var permutation: [Int] = []

    public init(datasetSize: Int, batchSize: Int, seed: UInt64) {
        precondition(datasetSize > 0 && batchSize > 0)
        self.datasetSize = datasetSize; self.batchSize = batchSize; self.seed = seed
    }

    public func batch(step: Int) -> [Int] {
        (0..<batchSize).map { k in
            let g = step * batchSize + k
            let epoch = g / datasetSize
            if epoch != cachedEpoch {
                permutation = UniformSampler.permutation(count: datasetSize, seed: seed &+ UInt64(epoch) &* 0x9E37_79B9)
                cachedEpoch = epoch
            }
            return permutation[g % datasetSize]
        }
    }

    /// Fisher–Yates over a seeded stream.
    static func permutation(count: Int, seed: UInt64) -> [Int] {
        var rng = RNG(seed: seed, stream: 2)
        var p = Array(0..<count)
        if count > 1 { for i in stride(from: count - 1, to: 0, by: -1) { p.swapAt(i, rng.below(i + 1)) } }
        return p
    }

    public var state: [UInt64] { [seed] }
    public func restore(_ state: [UInt64]) throws {
        guard state == [seed] else { throw ObjectiveError("data order state comes from another seed") }
    }
}
