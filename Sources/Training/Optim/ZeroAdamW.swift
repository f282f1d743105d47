import Distributed
import Foundation
import TensorCore

/// `--zero 1|2`: AdamW (`AdamW.swift`) with its moments sharded over ranks (ZeRO,
/// Rajbhandari et al., arXiv 1910.02054, sec. 5.1): rank r keeps m and v only for its parts
/// of the gradient pieces (`ShardPlan`), updates those parameters from its summed gradient
/// shard (`ShardedGradients`), then every rank's parts are allgathered, so every replica
/// holds the same full parameters after the step, as without ZeRO.
///
/// Clipping needs the global norm: each rank's squared shard norm, summed over ranks
/// (`gradientNorm`). Checkpoints hold the gathered moments in the unsharded layout (the
/// trainable set's order, as `AdamW.state`), so a run resumes at any rank count and with or
/// without `--zero`.
public final class ZeroAdamW: Optimizer {
    public let name = "adamw"
    public let beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    let comm: Communicator
    public let gradients: ShardedGradients
    private let trainable: TrainableSet
    private var m: [Float], v: [Float]
    private var t = 0
    private let spans: [(range: Range<Int>, decay: Bool, moment: Int)]

    /// Moments for this rank's shard only. Throws when the plan cannot give every rank a part
    /// of every bucket (`ShardPlan`).
    public init(params: ParameterStore, trainable: TrainableSet, blocks: [Range<Int>], comm: Communicator, stage: Int,
                beta1: Float, beta2: Float, eps: Float, weightDecay: Float) throws {
        let plan = try ShardPlan(regions: trainable.ranges, blocks: blocks, size: comm.size)
        gradients = ShardedGradients(comm: comm, gradients: params.grads, plan: plan, releasesGradients: stage >= 2)
        // ZeRO-2: the gradient buffer was zero-filled at allocation, which made all of it
        // resident; its pages go back now rather than at the first step, so the state before
        // the first step is the 4N + 12N/R the formula counts.
        if stage >= 2 { gradients.zeroGradients() }
        self.comm = comm
        self.trainable = trainable
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
        CheckedAllocation.probe(floats: 2 * gradients.shardCount, for: "AdamW's moments of \(gradients.shardCount) parameters (this rank's shard)")
        m = [Float](repeating: 0, count: gradients.shardCount)
        v = [Float](repeating: 0, count: gradients.shardCount)
        spans = optimizerSpans(params, ranges: gradients.owned)
    }

    /// √(Σ over ranks of the squared shard norms): the global norm of the summed gradient.
    public func gradientNorm() -> Double {
        let local = gradients.shardSquaredNorm { OptimizerKernels.norm($0, count: $1) }
        return comm.allreduce(local, op: .sum).squareRoot()
    }

    /// Updates this rank's parts from its gradient shard, then allgathers the parameters.
    public func step(params: ParameterStore, lr: Float, gradScale: Float = 1) {
        t += 1
        let g = gradients
        adamwUpdate(spans: spans, p: params.values, gradient: { range, moment in g.summedGradient(range, moment: moment) },
                    m: &m, v: &v, t: t, lr: lr, gradScale: gradScale, beta1: beta1, beta2: beta2, eps: eps, weightDecay: weightDecay)
        gradients.allgatherParameters(params.values)
    }

    public var stateKeys: Set<String> { ["m", "v", "t"] }

    /// Collective: every rank's moment parts gathered on rank 0 into the unsharded layout
    /// (other ranks return empty moments; only rank 0 writes checkpoints).
    public var state: [String: [Float]] {
        let full = comm.isCoordinator ? trainable.count : 0
        var gm = [Float](repeating: 0, count: full), gv = [Float](repeating: 0, count: full)
        var offset = 0
        for piece in gradients.plan.pieces {
            let mine = gradients.plan.part(piece, rank: comm.rank)
            for (source, into) in [(m, 0), (v, 1)] {
                let parts = comm.gather(source[offset..<(offset + mine.count)].withUnsafeBytes { Array($0) }, root: 0)
                guard comm.isCoordinator else { continue }
                var at = trainablePosition(piece.lowerBound)
                for bytes in parts {
                    bytes.withUnsafeBytes { raw in
                        let floats = raw.bindMemory(to: Float.self)
                        if into == 0 { for x in floats { gm[at] = x; at += 1 } } else { for x in floats { gv[at] = x; at += 1 } }
                    }
                }
            }
            offset += mine.count
        }
        return ["m": gm, "v": gv, "t": [Float(t)]]
    }

    /// Takes this rank's parts of the unsharded moments (validated as `AdamW.restore` does).
    public func restore(_ state: [String: [Float]]) throws {
        let m = try restoredArray(state, "m", count: trainable.count)
        let v = try restoredArray(state, "v", count: trainable.count, nonNegative: true)
        let t = try restoredStepCount(state)
        var sm: [Float] = [], sv: [Float] = []
        sm.reserveCapacity(gradients.shardCount); sv.reserveCapacity(gradients.shardCount)
        for r in gradients.owned {
            let at = trainablePosition(r.lowerBound)
            sm += m[at..<(at + r.count)]
            sv += v[at..<(at + r.count)]
        }
        self.m = sm; self.v = sv; self.t = t
    }

    /// Where flat index `i` (inside the trainable set) sits in the unsharded moment buffers.
    private func trainablePosition(_ i: Int) -> Int {
        var before = 0
        for r in trainable.ranges {
            if r.contains(i) { return before + i - r.lowerBound }
            before += r.count
        }
        preconditionFailure("index \(i) outside the trainable set")
    }
}
