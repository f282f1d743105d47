import Distributed
import Foundation
import Models
import TensorCore

/// Memory per rank (README, "Memory"). `--zero 1|2`: AdamW's moments, and with 2 the
/// gradients, sharded over ranks (`Optim/ZeroAdamW.swift`, `Distributed/ShardedGradients.swift`),
/// set up once with a collective refusal of what cannot shard. `--recompute`: transformer
/// blocks re-run in backward (`Models/BlockRecompute.swift`).
extension Trainer {
    static func enableRecompute(recipe r: Recipe, model: LanguageModel) {
        guard r.recompute else { return }
        guard let m = model as? BlockRecomputing else {
            Fatal.agree("--recompute: this model's blocks cannot be re-run", code: Fatal.Code.input)
            return
        }
        m.recomputeArena = Arena()
    }

    static func makeZero(recipe r: Recipe, comm: Communicator, model: LanguageModel, trainable: TrainableSet) -> ZeroAdamW? {
        guard r.zero > 0 else { return nil }
        return Fatal.collective {
            try r.checkZeroCanShard()
            return try ZeroAdamW(params: model.parameters, trainable: trainable, blocks: model.blockParameterRanges, comm: comm,
                                 stage: r.zero, beta1: Float(r.beta1), beta2: Float(r.beta2), eps: Float(r.adamEps),
                                 weightDecay: Float(r.weightDecay))
        }
    }

    /// Zeroes the trainable gradients before a step (ZeRO-2 returns their pages instead).
    func zeroGradients() {
        if let zero { zero.gradients.zeroGradients() } else { trainable.zeroGradients(model.parameters) }
    }

    /// ZeRO-2 reduce-scatters every micro-batch's gradient into the shard (`ShardedGradients`,
    /// "rounds") instead of accumulating the full gradient; nil otherwise.
    var zeroRounds: ShardedGradients? { zero.flatMap { $0.gradients.releasesGradients ? $0.gradients : nil } }

    /// Reduce-scatter rounds of this step: with ZeRO-2, the most micro-batches any rank has
    /// (ranks with fewer join the rest with a zero gradient, as MPI needs every rank in every
    /// round); otherwise this rank's micro-batch count (one sync after the last).
    func reductionRounds(microBatches: Int) -> Int {
        guard zeroRounds != nil, comm.size > 1 else { return microBatches }
        return Int(comm.allreduce(Int64(microBatches), op: .max))
    }

    /// Whether micro-batch `k`'s backward starts its buckets' sums or reduce-scatters: the
    /// step's last round always, every micro-batch with ZeRO-2.
    func syncsDuringBackward(_ k: Int, rounds: Int, overlap: Bool) -> Bool {
        overlap && (k == rounds - 1 || zeroRounds != nil)
    }

    /// ZeRO-2, after micro-batch `k`: completes its round (the full gradient released), except
    /// the step's last round, which `syncGradients` completes.
    func endMicroBatch(_ k: Int, rounds: Int) {
        if let sharded = zeroRounds, k < rounds - 1 { sharded.finish() }
    }

    /// ZeRO-2: the rounds this rank has no micro-batch for, with its (zero) gradient, all but
    /// the last, which `syncGradients` runs.
    func joinRemainingRounds(microBatches: Int, rounds: Int) {
        guard let sharded = zeroRounds else { return }
        for _ in microBatches..<max(microBatches, rounds - 1) { sharded.finish() }
    }
}
