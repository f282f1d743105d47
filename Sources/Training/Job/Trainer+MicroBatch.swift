import Foundation
import Models
import TensorCore

/// Phase 2 of a step: the forward–objective–backward pass of one micro-batch, in two forms.
///
/// Fused (row-local objectives such as `nll`, on a `HiddenStateModel`): the model runs to
/// its last hidden state, then `Tape.fusedHead` projects chunks of rows to logits, hands
/// each chunk to the objective (concurrently over threads) and backpropagates the head at
/// once, so the [N, V] logits and dL/dlogits are never stored; then the rest of the tape.
/// Unfused (every other objective): full logits, the objective over all rows, backward.
/// Both take activations from the trainer's arena, so the step loop does not allocate them.
/// When the producer observes, both also record −log p(target) per loss token for
/// `SequenceStatistics`.
extension Trainer {
    struct MicroBatchPass {
        var mb: MicroBatch
        var index: Int
        var context: StepContext
        var sequences: [StepSequence]
        /// Backward starts each finished block's gradient sum (the step's last micro-batch).
        var syncing: Bool
        var observing: Bool
    }

    struct MicroBatchResult {
        var objective: ObjectiveResult
        var statistics: [SequenceStatistics]
        var loss: Double { objective.loss }
    }

    var canFuseHead: Bool {
        let r = objective.requirements
        // (A loaded reference that the objective does not read in the step — token-clean's
        // fixed labels were scored with it before — does not stop the fusion.)
        return r.rowLocal && !r.statisticsPass && !r.referenceModel && r.oldPolicyRefresh == nil
            && oldPolicy == nil && model is HiddenStateModel
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
        if syncing, let sharded = zero?.gradients {  // --zero: reduce-scatters instead of sums
            tape.onParametersReady = { sharded.ready($0) }
            tape.onBackwardStep = { sharded.progress() }
        }
        return tape
    }

    func fusedMicroBatch(_ pass: MicroBatchPass) -> MicroBatchResult? {
        guard canFuseHead, let model = model as? HiddenStateModel else { return nil }
        let mb = pass.mb
        let tape = microBatchTape(syncing: pass.syncing)
        let segments = setup.recipe.packing ? mb.segments : nil
        let (hidden, head, layout) = withTrainingNoise(mb, pass.context) {
            model.forwardHidden(tape, inputs: mb.inputs, positions: mb.positions, segments: segments, batch: mb.batch, seqLen: mb.seqLen)
        }
        let (seqId, seqTokens) = sequenceIdentities(mb)
        let V = model.vocabSize
        var nll = [Float](repeating: 0, count: pass.observing ? mb.inputs.count : 0)
        var partial = [ObjectiveResult?](repeating: nil, count: Parallel.threads)
        nll.withUnsafeMutableBufferPointer { nll in
            partial.withUnsafeMutableBufferPointer { slots in
                tape.fusedHead(hidden, weight: head, layout: layout,
                               lossWritesWholeRows: objective.requirements.writesWholeRows) { t, rows, logits, dlogits in
                    let inp = ObjectiveInput(rows: rows.count, vocab: V, logits: logits, targets: Array(mb.targets[rows]),
                                             mask: Array(mb.mask[rows]), sequenceLossTokens: Array(seqTokens[rows]),
                                             sequenceId: Array(seqId[rows]), context: pass.context,
                                             sequences: pass.sequences,
                                             behaviourLogProbs: mb.behaviourLogProbs.isEmpty ? [] : Array(mb.behaviourLogProbs[rows]),
                                             tokenWeights: mb.tokenWeights.isEmpty ? [] : Array(mb.tokenWeights[rows]))
                    if pass.observing { targetLosses(inp, into: nll.baseAddress! + rows.lowerBound) }
                    let r = objective.lossAndGradient(inp, dlogits: dlogits)
                    slots[t] = slots[t].map { merge($0, r) } ?? r
                }
            }
        }
        onPhase?("forward")   // with the fused head's own backward
        tape.backward()
        return MicroBatchResult(objective: partial.compactMap { $0 }.reduce(ObjectiveResult(loss: 0), merge),
                                statistics: pass.observing ? sequenceStatistics(mb, ids: seqId, nll: nll, sequences: pass.sequences) : [])
    }

    func unfusedMicroBatch(_ pass: MicroBatchPass) -> MicroBatchResult {
        let tape = microBatchTape(syncing: pass.syncing)
        let f = forward(pass.mb, index: pass.index, context: pass.context, sequences: pass.sequences, tape: tape)
        return withExtendedLifetime(f) {
            var nll = [Float](repeating: 0, count: pass.observing ? f.input.rows : 0)
            if pass.observing { nll.withUnsafeMutableBufferPointer { targetLosses(f.input, into: $0.baseAddress!) } }
            // The objective accumulates straight into the logits' (zeroed) gradient, which is
            // that of z/T: ∂/∂z = (1/T)·∂/∂(z/T).
            let result = objective.lossAndGradient(f.input, dlogits: f.logits.grad)
            divideByTemperature(f.logits.grad, count: f.logits.count, pass.context)
            onPhase?("forward")
            tape.backward()
            return MicroBatchResult(objective: result, statistics: pass.observing
                ? sequenceStatistics(pass.mb, ids: f.input.sequenceId, nll: nll, sequences: pass.sequences) : [])
        }
    }

    /// One micro-batch's forward as the objective sees it. `input` carries raw pointers into
    /// `logits` and `held` (reference and old-policy logits): keep this value alive
    /// (`withExtendedLifetime`) for as long as `input` is used.
    struct MicroBatchForward {
        var input: ObjectiveInput
        var logits: Tensor
        var held: [Tensor]
    }

    /// Runs the model (and the reference / old policy when the objective needs them, unless
    /// `companions` is false) on one micro-batch; `dropout: false` for evaluation (LoRA's
    /// dropout and NEFTune's noise are training-time only: `withTrainingNoise`).
    func forward(_ mb: MicroBatch, index: Int, context: StepContext, sequences: [StepSequence], tape: Tape,
                 dropout: Bool = true, companions: Bool = true) -> MicroBatchForward {
        let segments = setup.recipe.packing ? mb.segments : nil
        let run = { self.model.forward(tape, inputs: mb.inputs, positions: mb.positions, segments: segments, batch: mb.batch, seqLen: mb.seqLen) }
        let logits = dropout ? withTrainingNoise(mb, context, run) : run()
        // z/T in place: the head's backward reads only dL/dlogits, not the logits.
        divideByTemperature(logits.data, count: logits.count, context)
        let (seqId, seqTokens) = sequenceIdentities(mb)
        var inp = ObjectiveInput(rows: logits.rows, vocab: logits.columns, logits: logits.data, targets: mb.targets,
                                 mask: mb.mask, sequenceLossTokens: seqTokens, sequenceId: seqId,
                                 context: context, sequences: sequences,
                                 behaviourLogProbs: mb.behaviourLogProbs, tokenWeights: mb.tokenWeights)
        inp.referenceLogProbs = mb.referenceLogProbs
        var held: [Tensor] = []
        let noGrad = Tape(recording: false)
        if let ref = setup.referenceModel, objective.requirements.referenceModel, objective.requirements.referenceInStep, companions {
            let r = ref.forward(noGrad, inputs: mb.inputs, positions: mb.positions, segments: segments, batch: mb.batch, seqLen: mb.seqLen)
            divideByTemperature(r.data, count: r.count, context)
            inp.referenceLogits = UnsafePointer(r.data)
            held.append(r)
        }
        if let old = oldPolicy, companions {
            let o = old.forward(noGrad, inputs: mb.inputs, positions: mb.positions, segments: segments, batch: mb.batch, seqLen: mb.seqLen)
            divideByTemperature(o.data, count: o.count, context)
            inp.oldLogits = UnsafePointer(o.data)
            held.append(o)
        }
        return MicroBatchForward(input: inp, logits: logits, held: held)
    }

    /// x ← x/T (the step's `logitTemperature`; nothing at 1), a true division as TRL's `logits / temperature`.
    func divideByTemperature(_ x: UnsafeMutablePointer<Float>, count: Int, _ context: StepContext) {
        let T = context.logitTemperature
        guard T != 1 else { return }
        for i in 0..<count { x[i] /= T }
    }

    /// Per position: the sequence's index in the step batch (−1 on padding) and that
    /// sequence's loss-token count. The index is the sequence's global identity for the
    /// step, so it does not depend on the rank count (OTR keys its sampling streams on it).
    func sequenceIdentities(_ mb: MicroBatch) -> (ids: [Int32], tokens: [Float]) {
        var seqId = [Int32](repeating: -1, count: mb.inputs.count)
        var seqTokens = [Float](repeating: 0, count: mb.inputs.count)
        var tokensOf: [Int32: Float] = [:]
        for i in 0..<mb.inputs.count where mb.segments[i] >= 0 {
            let id = Int32(mb.rowExamples[i / mb.seqLen][Int(mb.segments[i])])
            seqId[i] = id
            tokensOf[id, default: 0] += mb.mask[i]
        }
        for i in 0..<seqId.count where seqId[i] >= 0 { seqTokens[i] = tokensOf[seqId[i]]! }
        return (seqId, seqTokens)
    }

    /// −log p(target) on the loss rows of `input` (0 elsewhere), for `observe`.
    func targetLosses(_ input: ObjectiveInput, into out: UnsafeMutablePointer<Float>) {
        for r in 0..<input.rows where input.mask[r] != 0 {
            let z = input.logits + r * input.vocab
            out[r] = SoftmaxKernels.logSumExp(z, count: input.vocab) - z[Int(input.targets[r])]
        }
    }

    /// Per-position losses summed per sequence, in the order the sequences appear.
    func sequenceStatistics(_ mb: MicroBatch, ids: [Int32], nll: [Float], sequences: [StepSequence]) -> [SequenceStatistics] {
        var at: [Int: Int] = [:], out: [SequenceStatistics] = []
        for i in 0..<ids.count where ids[i] >= 0 {
            let s = Int(ids[i])
            if at[s] == nil {
                at[s] = out.count
                out.append(SequenceStatistics(index: s, example: sequences[s].example, lossSum: 0, lossTokens: 0))
            }
            if mb.mask[i] != 0 { out[at[s]!].lossSum += Double(nll[i]); out[at[s]!].lossTokens += 1 }
        }
        return out
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
