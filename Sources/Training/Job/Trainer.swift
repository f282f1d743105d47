import Distributed
import Foundation
import Models
import TensorCore

/// The path of one training step (docs/ARCHITECTURE.md):
/// coordinator decides → shard → forward → objective → backward → allreduce → clip → update.
public final class Trainer {
    public let setup: RunSetup
    let comm: Communicator
    let model: LanguageModel
    let objective: Objective
    let optimizer: Optimizer
    let schedule: LRSchedule
    let source: BatchSource
    let oldPolicy: LanguageModel?
    public internal(set) var skippedSteps = 0   // set by a checkpoint restore
    /// Wall-clock split of the last step (seconds), for `sft-dist bench` and profiling.
    public struct StepTimings: Sendable {
        public var compute = 0.0        // forward + objective + backward, all micro-batches
        public var gradientSync = 0.0   // in the gradient allreduce after backward (incl. waiting for other ranks)
        public var syncInBackward = 0.0 // in MPI during backward (overlapped sums), part of `compute`
        public var update = 0.0         // scalar reductions, norm, clipping, optimizer
    }
    public private(set) var lastTimings = StepTimings()
    /// Activations and their gradients, reused micro-batch after micro-batch (TensorCore.Arena).
    let arena = Arena()

    public struct StepReport {
        public var step: Int
        public var loss: Double
        public var lr: Float
        public var gradNorm: Double
        public var tokens: Int              // non-padding input tokens, all ranks
        public var lossTokens: Int
        public var diagnostics: [(String, Double)]
        public var skipped: Bool
    }

    public init(setup: RunSetup, comm: Communicator, source: BatchSource? = nil) {
        self.setup = setup
        self.comm = comm
        model = setup.model
        objective = setup.objective
        let r = setup.recipe
        switch r.optimizer {
        case .sgd: optimizer = SGD(params: model.parameters, momentum: Float(r.momentum), weightDecay: Float(r.weightDecay))
        case .adamw: optimizer = AdamW(params: model.parameters, beta1: Float(r.beta1), beta2: Float(r.beta2),
                                       eps: Float(r.adamEps), weightDecay: Float(r.weightDecay))
        }
        schedule = LRSchedule(kind: r.schedule, peak: Float(r.lr),
                              warmupSteps: r.warmupSteps, totalSteps: r.steps, minRatio: Float(r.minLRRatio))
        self.source = source ?? UniformSampler(datasetSize: setup.train.count, batchSize: r.batchSize, seed: r.seed)
        oldPolicy = objective.requirements.oldPolicyRefresh != nil ? model.makeReplica() : nil
    }

    /// This rank's share of a global batch: every size-th example, starting at its rank.
    func shard(_ indices: [Int]) -> [Int] {
        stride(from: comm.rank, to: indices.count, by: comm.size).map { indices[$0] }
    }

    func microBatches(_ mine: [Int]) -> [MicroBatch] {
        let r = setup.recipe, examples = setup.train.examples, pad = setup.tokenizer.padId
        if r.packing {
            let all = Batching.packed(examples, indices: mine, seqLen: min(r.maxLength, model.maxSequenceLength), padId: pad)
            // Group packed rows micro_batch_size at a time.
            return stride(from: 0, to: all.batch, by: r.microBatchSize).map { start in
                rows(of: all, from: start, count: min(r.microBatchSize, all.batch - start))
            }
        }
        return stride(from: 0, to: mine.count, by: r.microBatchSize).map {
            Batching.padded(examples, indices: Array(mine[$0..<min($0 + r.microBatchSize, mine.count)]), padId: pad)
        }
    }

    public func step(_ step: Int) -> StepReport {
        // 1. The coordinator decides the global batch and broadcasts it.
        var bytes = comm.isCoordinator ? encode(source.batch(step: step)) : []
        comm.broadcast(&bytes, root: 0)
        let global = decode(bytes)
        // 2. Shard, and the global normalisers (allreduced, so no rank assumes the others).
        let micro = microBatches(shard(global))
        firstLocalSequence = micro.reduce(into: [0]) { acc, mb in acc.append(acc.last! + mb.rowExamples.reduce(0) { $0 + $1.count }) }
        var counts: [Int64] = [Int64(micro.reduce(0) { $0 + $1.lossTokens }),
                               Int64(micro.reduce(0) { $0 + sequenceCount($1) }),
                               Int64(micro.reduce(0) { total, mb in total + mb.segments.filter { $0 >= 0 }.count })]
        comm.allreduce(&counts, op: .sum)
        var context = StepContext(step: step, totalSteps: setup.recipe.steps,
                                  globalLossTokens: Int(counts[0]), globalSequences: Int(counts[1]),
                                  seed: setup.recipe.seed)
        if let every = objective.requirements.oldPolicyRefresh, let old = oldPolicy, step % max(every, 1) == 0 {
            old.copyParameters(from: model)
        }
        if objective.requirements.statisticsPass {
            let local = micro.enumerated().flatMap { k, mb in
                let f = forward(mb, index: k, context: context, tape: Tape(recording: false))
                return withExtendedLifetime(f) { objective.statistics(f.input) }
            }
            context.statistics = comm.allgather(floatBytes(local)).map(floats)
        }
        objective.beginStep(context)

        // 3–5. Forward, objective, backward per micro-batch; gradients accumulate.
        let tCompute = comm.wallTime()
        model.parameters.zeroGrads()
        var total = ObjectiveResult(loss: 0), localBad = false
        // On the last micro-batch each block's gradient sum starts as soon as backward has
        // finished that block (GradientBuckets); the rest is reduced after backward.
        let overlap = setup.recipe.overlapGradSync && comm.size > 1
        for (k, mb) in micro.enumerated() {
            let syncing = overlap && k == micro.count - 1
            // Trainer+Fused.swift: LM head fused with a row-local objective, or the full logits.
            let result = fusedMicroBatch(mb, index: k, context: context, syncing: syncing)
                ?? unfusedMicroBatch(mb, index: k, context: context, syncing: syncing)
            if !result.loss.isFinite { localBad = true }
            total = merge(total, result)
        }
        let tSync = comm.wallTime()
        if overlap {
            buckets.finish(canonical: blockRanges)
        } else {
            comm.allreduce(model.parameters.gradBuffer, op: .sum)
        }
        let tSynced = comm.wallTime()
        lastTimings = StepTimings(compute: tSync - tCompute, gradientSync: tSynced - tSync,
                                  syncInBackward: overlap ? buckets.takeSecondsInBackward() : 0)
        let (sums, names) = reduceScalars(loss: total.loss, bad: localBad, diag: total.diagnostics, counts: total.diagnosticCounts)
        let globalLoss = sums[0]
        let badRank = Int(sums[1]) - 1
        let norm = gradientNorm(model.parameters)
        let lr = schedule.lr(at: step)
        var report = StepReport(step: step, loss: globalLoss, lr: lr, gradNorm: norm, tokens: Int(counts[2]),
                                lossTokens: Int(counts[0]), diagnostics: [], skipped: false)
        for (i, name) in names.enumerated() {
            let count = sums[2 + names.count + i]
            report.diagnostics.append((name, count > 0 ? sums[2 + i] / count : sums[2 + i]))
        }
        // 6. Non-finite loss or gradient: the same decision on every rank (values are global).
        if !globalLoss.isFinite || !norm.isFinite {
            let whereFrom = badRank >= 0 ? " (first seen on rank \(badRank))" : ""
            if setup.recipe.nanPolicy == .skip {
                skippedSteps += 1
                report.skipped = true
                return report
            }
            // Global values, so every rank takes this branch; the coordinator's message prints.
            Fatal.agree(comm.isCoordinator ? "non-finite \(globalLoss.isFinite ? "gradient" : "loss") at step \(step + 1)\(whereFrom); lower the learning rate, or set nan_policy: skip to skip such steps" : nil,
                        code: Fatal.Code.training)
        }
        clipGradients(model.parameters, norm: norm, maxNorm: setup.recipe.gradClip)
        optimizer.step(params: model.parameters, lr: lr)
        lastTimings.update = comm.wallTime() - tSynced
        return report
    }

    /// Runs the model (and reference / old policy when the objective needs them) on one
    /// micro-batch; returns the objective's view and the logits tensor to backprop from.
    /// One micro-batch's forward as the objective sees it. `input` carries raw pointers into
    /// `logits` and `held` (reference and old-policy logits): keep this value alive
    /// (`withExtendedLifetime`) for as long as `input` is used.
    struct MicroBatchForward {
        var input: ObjectiveInput
        var logits: Tensor
        var held: [Tensor]
    }

    /// Runs the model (and the reference / old policy when the objective needs them) on one
    /// micro-batch.
    func forward(_ mb: MicroBatch, index: Int, context: StepContext, tape: Tape) -> MicroBatchForward {
        let segments = setup.recipe.packing ? mb.segments : nil
        let logits = model.forward(tape, inputs: mb.inputs, positions: mb.positions, segments: segments,
                                   batch: mb.batch, seqLen: mb.seqLen)
        let (seqId, seqTokens) = sequenceIdentities(mb, index: index)
        let rng = Trainer.objectiveRNG(seed: setup.recipe.seed, step: context.step, rank: comm.rank, microBatch: index)
        var inp = ObjectiveInput(rows: logits.rows, vocab: logits.columns, logits: logits.data, targets: mb.targets,
                                 mask: mb.mask, sequenceLossTokens: seqTokens, sequenceId: seqId,
                                 context: context, rng: rng)
        var held: [Tensor] = []
        let noGrad = Tape(recording: false)
        if let ref = setup.referenceModel {
            let r = ref.forward(noGrad, inputs: mb.inputs, positions: mb.positions, segments: segments, batch: mb.batch, seqLen: mb.seqLen)
            inp.referenceLogits = UnsafePointer(r.data)
            held.append(r)
        }
        if let old = oldPolicy {
            let o = old.forward(noGrad, inputs: mb.inputs, positions: mb.positions, segments: segments, batch: mb.batch, seqLen: mb.seqLen)
            inp.oldLogits = UnsafePointer(o.data)
            held.append(o)
        }
        return MicroBatchForward(input: inp, logits: logits, held: held)
    }

    /// The objective's per-(step, rank, micro-batch) stream. A pure function of its arguments,
    /// so a resumed run draws exactly what the uninterrupted one did; checkpoints record a
    /// sample of it to catch a binary whose derivation changed.
    static func objectiveRNG(seed: UInt64, step: Int, rank: Int, microBatch: Int) -> RNG {
        var rng = RNG(seed: seed ^ 0x5EED, stream: UInt64(step) &* 1_000_003 &+ UInt64(rank) &* 7919 &+ UInt64(microBatch))
        _ = rng.next()
        return rng
    }

    /// Local ordinal of each micro-batch's first sequence (for global sequence ids).
    var firstLocalSequence: [Int] = [0]
    lazy var buckets = GradientBuckets(comm: comm, gradients: model.parameters.grads, count: model.parameters.count)
    lazy var blockRanges = model.blockParameterRanges

    /// Allreduces [loss, bad-rank flag, diagnostic sums…, diagnostic counts…] in one call.
    /// Diagnostic names are agreed first (a rank with no micro-batch has none).
    func reduceScalars(loss: Double, bad: Bool, diag: [String: Double], counts: [String: Double]) -> ([Double], [String]) {
        let names = Set(comm.allgather(Array(diag.keys.sorted().joined(separator: "\n").utf8))
            .flatMap { String(decoding: $0, as: UTF8.self).split(separator: "\n").map(String.init) }).sorted()
        var v = [loss, 0] + names.map { diag[$0] ?? 0 } + names.map { counts[$0] ?? 0 }
        comm.allreduce(&v, op: .sum)
        var flag = [bad ? Double(comm.rank + 1) : 0]
        comm.allreduce(&flag, op: .max)  // highest failing rank, if several
        v[1] = flag[0]
        return (v, names)
    }

    func sequenceCount(_ mb: MicroBatch) -> Int {
        var seen = Set<Int>()
        for i in 0..<mb.mask.count where mb.mask[i] != 0 { seen.insert((i / mb.seqLen) * 4096 + Int(mb.segments[i])) }
        return seen.count
    }

    func rows(of mb: MicroBatch, from start: Int, count: Int) -> MicroBatch {
        var m = mb
        let r = (start * mb.seqLen)..<((start + count) * mb.seqLen)
        m.batch = count
        m.inputs = Array(mb.inputs[r]); m.targets = Array(mb.targets[r]); m.mask = Array(mb.mask[r])
        m.positions = Array(mb.positions[r]); m.segments = Array(mb.segments[r])
        m.exampleOfRow = Array(mb.exampleOfRow[start..<(start + count)])
        m.rowExamples = Array(mb.rowExamples[start..<(start + count)])
        m.lossTokens = Int(m.mask.reduce(0, +))
        return m
    }

    public var optimizerState: [String: [Float]] { optimizer.state }
}

func encode(_ ints: [Int]) -> [UInt8] {
    var out = [UInt8](); out.reserveCapacity(ints.count * 4)
    for v in ints { withUnsafeBytes(of: Int32(v).littleEndian) { out.append(contentsOf: $0) } }
    return out
}

func decode(_ bytes: [UInt8]) -> [Int] {
    stride(from: 0, to: bytes.count, by: 4).map { i in
        Int(Int32(littleEndian: bytes[i..<(i + 4)].withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }))
    }
}

func floatBytes(_ v: [Float]) -> [UInt8] { v.withUnsafeBytes { Array($0) } }
func floats(_ b: [UInt8]) -> [Float] {
    stride(from: 0, to: b.count, by: 4).map { i in b[i..<(i + 4)].withUnsafeBytes { $0.loadUnaligned(as: Float.self) } }
}
