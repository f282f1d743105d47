import Foundation
import Models
import TensorCore

/// The forward–objective–backward pass of one micro-batch, in two forms.
///
/// Fused (row-local objectives such as `nll`, on a `HiddenStateModel`): the model runs to
/// its last hidden state, then `Tape.fusedHead` projects chunks of rows to logits, hands
/// each chunk to the objective (concurrently over threads) and backpropagates the head at
/// once, so the [N, V] logits and dL/dlogits are never stored; then the rest of the tape.
/// Unfused (every other objective): full logits, the objective over all rows, backward.
/// Both take activations from the trainer's arena, so the step loop does not allocate them.
extension Trainer {
    var canFuseHead: Bool {
        let r = objective.requirements
        return r.rowLocal && !r.statisticsPass && !r.referenceModel && r.oldPolicyRefresh == nil
            && setup.referenceModel == nil && oldPolicy == nil && model is HiddenStateModel
    }

    /// A tape over the trainer's (reset) arena; with `syncing`, backward starts each finished
    /// block's gradient sum and drives the sums after every kernel (GradientBuckets).
    func microBatchTape(syncing: Bool) -> Tape {
        arena.reset()
        let tape = Tape(arena: arena)
        if syncing {
            tape.onParametersReady = { [buckets] in buckets.ready($0) }
            tape.onBackwardStep = { [buckets] in buckets.progress() }
        }
        return tape
    }

    func fusedMicroBatch(_ mb: MicroBatch, index: Int, context: StepContext, syncing: Bool) -> ObjectiveResult? {
        guard canFuseHead, let model = model as? HiddenStateModel else { return nil }
        let tape = microBatchTape(syncing: syncing)
        let segments = setup.recipe.packing ? mb.segments : nil
        let (hidden, head, layout) = model.forwardHidden(tape, inputs: mb.inputs, positions: mb.positions,
                                                         segments: segments, batch: mb.batch, seqLen: mb.seqLen)
        let (seqId, seqTokens) = sequenceIdentities(mb, index: index)
        let V = model.vocabSize
        var partial = [ObjectiveResult?](repeating: nil, count: Parallel.threads)
        partial.withUnsafeMutableBufferPointer { slots in
            tape.fusedHead(hidden, weight: head, layout: layout) { t, rows, logits, dlogits in
                let inp = ObjectiveInput(rows: rows.count, vocab: V, logits: logits, targets: Array(mb.targets[rows]),
                                         mask: Array(mb.mask[rows]), sequenceLossTokens: Array(seqTokens[rows]),
                                         sequenceId: Array(seqId[rows]), context: context)
                let r = objective.lossAndGradient(inp, dlogits: dlogits)
                slots[t] = slots[t].map { merge($0, r) } ?? r
            }
        }
        tape.backward()
        return partial.compactMap { $0 }.reduce(ObjectiveResult(loss: 0), merge)
    }

    func unfusedMicroBatch(_ mb: MicroBatch, index: Int, context: StepContext, syncing: Bool) -> ObjectiveResult {
        let tape = microBatchTape(syncing: syncing)
        let f = forward(mb, index: index, context: context, tape: tape)
        return withExtendedLifetime(f) {
            // The objective accumulates straight into the logits' (zeroed) gradient.
            let result = objective.lossAndGradient(f.input, dlogits: f.logits.grad)
            tape.backward()
            return result
        }
    }

    /// Per position: the global ordinal of its sequence (−1 on padding) and that sequence's
    /// loss-token count, as `forward(_:index:context:tape:)` gives them to the objective.
    /// The ordinal does not depend on the rank count: local sequence j of this rank is global
    /// ordinal rank + j·size (the shard is strided; micro-batches and packing keep the order).
    func sequenceIdentities(_ mb: MicroBatch, index: Int) -> (ids: [Int32], tokens: [Float]) {
        var seqId = [Int32](repeating: -1, count: mb.inputs.count)
        var seqTokens = [Float](repeating: 0, count: mb.inputs.count)
        var tokensOf: [Int32: Float] = [:]
        var local = firstLocalSequence[index]
        var lastKey = -1
        for i in 0..<mb.inputs.count where mb.segments[i] >= 0 {
            let key = (i / mb.seqLen) * 4096 + Int(mb.segments[i])
            if key != lastKey { if lastKey >= 0 { local += 1 }; lastKey = key }
            let id = Int32(comm.rank + local * comm.size)
            seqId[i] = id
            tokensOf[id, default: 0] += mb.mask[i]
        }
        for i in 0..<seqId.count where seqId[i] >= 0 { seqTokens[i] = tokensOf[seqId[i]]! }
        return (seqId, seqTokens)
    }
}

/// Sums of two partial results over disjoint rows (losses and diagnostic sums add).
func merge(_ a: ObjectiveResult, _ b: ObjectiveResult) -> ObjectiveResult {
    var r = a
    r.loss += b.loss
    for (k, v) in b.diagnostics { r.diagnostics[k, default: 0] += v }
    for (k, v) in b.diagnosticCounts { r.diagnosticCounts[k, default: 0] += v }
    return r
}
