import TensorCore

/// `num_train_epochs`' order: each epoch a seeded permutation cut into ⌈N / batchSize⌉
/// batches, the last holding what is left (N − (⌈N/B⌉ − 1)·B rows) — transformers' Trainer over
/// a shuffled DataLoader with drop_last False, so a run of E epochs takes ⌈E·⌈N/B⌉⌉ steps as
/// TRL's does, and each epoch trains every row exactly once. The permutations are
/// `UniformSampler`'s, so when batchSize divides N both samplers give the same batches.
///
/// The batch of step s is a pure function of (seed, s): resuming needs no cursor and any rank
/// count sees the same batches (a short batch may leave a rank without rows; the step's
/// counts are global).
public final class EpochSampler: BatchSource {
    public let datasetSize: Int
    public let batchSize: Int
    public let seed: UInt64
    /// ⌈N / batchSize⌉: steps in one epoch.
    public let batchesPerEpoch: Int
    private var epochs: EpochPermutations

    public init(datasetSize: Int, batchSize: Int, seed: UInt64) {
        precondition(datasetSize > 0 && batchSize > 0)
        self.datasetSize = datasetSize; self.batchSize = batchSize; self.seed = seed
        batchesPerEpoch = Self.batchesPerEpoch(rows: datasetSize, batchSize: batchSize)
        epochs = EpochPermutations(count: datasetSize, seed: seed)
    }

    /// ⌈rows ÷ batchSize⌉, the last batch short unless batchSize divides rows.
    public static func batchesPerEpoch(rows: Int, batchSize: Int) -> Int { (rows + batchSize - 1) / batchSize }

    public func batch(step: Int) -> [Int] {
        let first = (step % batchesPerEpoch) * batchSize
        return Array(epochs.permutation(step / batchesPerEpoch)[first..<min(first + batchSize, datasetSize)])
    }

    /// The seed and the epoch's length: a checkpoint of the streaming order (`UniformSampler`,
    /// one word) holds other batches unless batchSize divides N.
    public var state: [UInt64] { [seed, UInt64(batchesPerEpoch)] }

    public func restore(_ state: [UInt64]) throws {
        if state == self.state || (state == [seed] && datasetSize % batchSize == 0) { return }
        if state.count == 1 {
            throw StateError(.value, "words", "hold the order of a run that streamed its epochs (sft-dist before epochs ended with a short batch, as transformers' do): "
                             + "\(datasetSize) rows at batch_size \(batchSize) make other batches now; resume it with the sft-dist that wrote it, or start again")
        }
        throw StateError(.value, "words", "hold \(state.map(StateValue.hex)), the epochs of seed \(seed) at \(batchesPerEpoch) batches are \(self.state.map(StateValue.hex))")
    }
}
