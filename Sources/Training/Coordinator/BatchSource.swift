import TensorCore

/// An order over the training set: which examples make up each step's global batch.
/// `DemonstrationProducer` (the default `StepProducer`) turns them into a step batch; a
/// producer that needs more than indices (rollouts, selection) implements `StepProducer`
/// itself.
public protocol BatchSource: AnyObject {
    /// The global batch for `step`: indices into the training set (rank 0 calls this).
    func batch(step: Int) -> [Int]
    /// Everything needed to continue exactly after a restart.
    var state: [UInt64] { get }
    func restore(_ state: [UInt64]) throws
}

/// Uniform sampling without replacement: epochs of a seeded permutation, consumed
/// `batchSize` at a time across epoch boundaries. The batch of step s is a pure function of
/// (seed, s), so resuming needs no saved cursor and any rank count sees the same batches.
///
/// `distinct` (online selection's candidate pools): a batch that runs into the next epoch
/// skips the rows it already holds and reads on, so it never holds a row twice — two copies
/// score alike and were both selected (a step trained 8 copies of one row). The batch of step
/// s still starts at position s · batchSize, so it stays a function of (seed, s).
public final class UniformSampler: BatchSource {
    public let datasetSize: Int
    public let batchSize: Int
    public let seed: UInt64
    public let distinct: Bool
    private var epochs: EpochPermutations

    public init(datasetSize: Int, batchSize: Int, seed: UInt64, distinct: Bool = false) {
        precondition(datasetSize > 0 && batchSize > 0 && (!distinct || batchSize <= datasetSize))
        self.datasetSize = datasetSize; self.batchSize = batchSize; self.seed = seed; self.distinct = distinct
        epochs = EpochPermutations(count: datasetSize, seed: seed)
    }

    /// The row at position g of the stream of epochs.
    private func element(_ g: Int) -> Int {
        epochs.permutation(g / datasetSize)[g % datasetSize]
    }

    public func batch(step: Int) -> [Int] {
        guard distinct else { return (0..<batchSize).map { element(step * batchSize + $0) } }
        var taken = Set<Int>(), rows: [Int] = []
        var g = step * batchSize
        while rows.count < batchSize {   // ends within the next epoch: batchSize ≤ datasetSize
            let row = element(g)
            if taken.insert(row).inserted { rows.append(row) }
            g += 1
        }
        return rows
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
        guard state == [seed] else { throw StateError(.value, "words", "hold \(state.map(StateValue.hex)), the data order of seed \(seed) is [\(StateValue.hex(seed))]") }
    }
}

/// Each epoch's seeded permutation of 0..<count, the latest one kept: both samplers read the
/// epochs in order, and share these permutations (so their batches agree where their cuts do).
struct EpochPermutations {
    let count: Int
    let seed: UInt64
    private var cachedEpoch = -1
    private var cached: [Int] = []

    init(count: Int, seed: UInt64) { self.count = count; self.seed = seed }

    mutating func permutation(_ epoch: Int) -> [Int] {
        if epoch != cachedEpoch {
            cached = UniformSampler.permutation(count: count, seed: seed &+ UInt64(epoch) &* 0x9E37_79B9)
            cachedEpoch = epoch
        }
        return cached
    }
}
