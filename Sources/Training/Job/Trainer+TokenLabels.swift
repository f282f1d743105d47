import Distributed
import Foundation
import Models
import TensorCore

/// Token Cleaning's and Forgetting's offline partition (arXiv 2502.01968, §3; arXiv 2508.04329,
/// §3; the authors' `generate_token_label.py` / `token_partitioning.py`): before the first step,
/// every loss token of the training set is scored once, ℓ_base − ℓ_ref with the initial weights
/// as the base and the frozen `--ref-model` as the reference, and the global top `ratio` of all
/// of them is labelled 1 (kept / P), the rest 0 (dropped / N). The labels then travel with each
/// training row as its `tokenWeights` (`apply`), so the objective reads them per position and
/// counts them over the step batch; they never change during the run.
struct TokenLabels {
    /// Every loss token's score, example by example in training-set order (4 bytes per loss
    /// token on every rank; labels are made from them when a row is drawn).
    let scores: [Float]
    /// Where each example's scores start in `scores`.
    let offsets: [Int]
    let threshold: Float
    let kept: Int, scored: Int

    /// The labels of these scores: the top `ratio` kept.
    init(scores: [Float], offsets: [Int], ratio: Double) {
        var sorted = scores
        (threshold, kept, scored) = ExcessLossSelection.topRatio(&sorted, ratio: ratio)
        self.scores = scores; self.offsets = offsets
    }

    /// Where each example's loss tokens start in `examples`' flat order.
    static func offsets<S: TokenSequence>(_ examples: [S]) -> [Int] {
        var offsets = [0]
        for e in examples { offsets.append(offsets.last! + e.lossMask.dropFirst().reduce(0) { $0 + Int($1) }) }
        return offsets
    }

    /// The positions t ≥ 1 of a sequence's loss tokens (`lossMask[t]`), in order: the k-th is the
    /// example's k-th entry of a table kept per loss token (its scores, from `offsets`).
    static func trainedPositions(_ s: StepSequence) -> [Int] { (1..<max(1, s.ids.count)).filter { s.lossMask[$0] != 0 } }

    /// The labels of the sequences of a step that are training rows (demonstrations of `example`).
    func apply(to batch: inout StepBatch) {
        for i in batch.sequences.indices {
            let s = batch.sequences[i]
            guard s.origin == .demonstration, s.tokenWeights.isEmpty, s.example >= 0, s.example + 1 < offsets.count else { continue }
            let trained = Self.trainedPositions(s)
            guard trained.count == offsets[s.example + 1] - offsets[s.example] else { continue }   // not the row it names
            var labels = [Float](repeating: 0, count: s.ids.count)
            for (k, t) in trained.enumerated() where scores[offsets[s.example] + k] >= threshold { labels[t] = 1 }
            batch.sequences[i].tokenWeights = labels
        }
    }
}

/// The scores as checkpointed state: a resumed run reads them back instead of scoring the
/// training set again — which it could not: its model no longer holds the initial weights.
final class TokenLabelsState: StatefulComponent {
    let stateName = "token_labels"
    let offsets: [Int], ratio: Double
    var labels: TokenLabels?
    init(offsets: [Int], ratio: Double) { self.offsets = offsets; self.ratio = ratio }

    func saveState() -> ComponentState {
        precondition(labels != nil, "token labels: a checkpoint before the training set was scored")
        return ComponentState(tensors: ["scores": StateTensor(shape: [labels!.scores.count], values: labels!.scores)])
    }

    func restoreState(_ state: ComponentState, step: Int) throws {
        try state.expectTensors(["scores"])
        labels = TokenLabels(scores: try state.tensor("scores", count: offsets.last!), offsets: offsets, ratio: ratio)
    }
}

extension Trainer {
    /// Scores the training set unless a checkpoint restored its scores (then false). `prepare`
    /// calls it too, for callers that step a trainer directly; `TrainingJob` calls it after
    /// resuming, before the first step, so the pass is not timed as a step.
    /// With `stop` (`scoreInGroups`), a stop signal ends the pass (`ScoringStopped`).
    @discardableResult
    func scoreTokenLabelsIfNeeded(stop: (() -> Bool)? = nil) throws(ScoringStopped) -> Bool {
        guard let state = tokenLabelsState, state.labels == nil else { return false }
        state.labels = try Self.tokenLabels(setup: setup, comm: comm, model: model, offsets: state.offsets, ratio: state.ratio,
                                            objective: objective.name, show: show, stop: stop)
        return true
    }

    /// Scores the training set (`scoreInGroups`, in groups of micro_batch_size), so every rank
    /// ends with every score and the same threshold. The groups do not depend on the rank count:
    /// a row's logits move in the last bits with the rows padded beside it, and over a whole
    /// training set some token sits that close to the threshold (dealt example by example, -n 2
    /// kept 12,727 tokens where -n 1 kept 12,725). Called before any update, so `model` holds the
    /// initial weights.
    static func tokenLabels(setup: RunSetup, comm: Communicator, model: LanguageModel, offsets: [Int], ratio: Double,
                            objective name: String, show: ((String) -> Void)?, stop: (() -> Bool)? = nil) throws(ScoringStopped) -> TokenLabels {
        guard let reference = setup.referenceModel else { preconditionFailure("objective \(name): token labels need the reference model") }
        Fatal.agree(reference.parameters.checksum() == model.parameters.checksum()
                    ? "objective \(name) scores=fixed: --ref-model holds the initial weights themselves, so every token would score 0 and be kept; give it a different model — the papers' is the base tuned on a small clean subset — or use --objective-arg scores=online" : nil)
        let examples = setup.train.examples.enumerated().map { StepSequence(demonstration: $1, index: $0) }
        let progress = comm.isCoordinator ? show.map { show in EvalProgress(label: name, show: show) } : nil
        let scores = try scoreInGroups(count: examples.count, offsets: offsets, size: setup.recipe.microBatchSize, comm: comm,
                                       what: "\(name) scores=fixed, training-set examples scored", progress: progress.map { p in { p.update("training-set examples scored", done: $0, total: $1) } },
                                       stop: stop) {
            excessLosses(model: model, reference: reference, examples: examples, indices: $0, padId: setup.tokenizer.padId)
        }
        Fatal.agree(scores.allSatisfy { $0 == 0 } ? "objective \(name) scores=fixed: every training token scores 0 (ℓ_base − ℓ_ref with a reference that predicts as the initial weights do), so every token would be kept; give --ref-model a different model — the papers' is the base tuned on a small clean subset — or use --objective-arg scores=online" : nil)
        return TokenLabels(scores: scores, offsets: offsets, ratio: ratio)
    }

    /// Every loss token's score of `count` examples, in their order (`offsets`: where each
    /// example's scores start). Collective, in rounds: the examples form fixed groups of `size`
    /// (group g on rank g mod ranks), each round every rank scores one group (`score` of its
    /// example indices) and all gather that round's scores, so no message grows with the data
    /// set and every rank ends with every score, the same for any rank count.
    /// `progress` hears (examples done, total) on the coordinator. With `stop` (collective:
    /// `StopSignal.agreed`), asked after every round but the last, the pass ends early when it
    /// says so (`ScoringStopped`): a run told to stop before its first step stops there.
    static func scoreInGroups(count: Int, offsets: [Int], size: Int, comm: Communicator, what: String,
                              progress: ((Int, Int) -> Void)?, stop: (() -> Bool)? = nil,
                              _ score: ([Int]) -> [Float]) throws(ScoringStopped) -> [Float] {
        var scores = [Float](repeating: .nan, count: offsets.last!)
        let size = max(1, size), groups = (count + size - 1) / size
        for round in stride(from: 0, to: groups, by: comm.size) {
            let g = round + comm.rank
            let local = g < groups ? score(Array((g * size)..<min((g + 1) * size, count))) : []
            for (r, values) in comm.allgather(FloatList(local)).map(\.values).enumerated() where round + r < groups {
                let first = (round + r) * size, last = min(first + size, count)
                precondition(values.count == offsets[last] - offsets[first], "\(what): group \(round + r) scored \(values.count) tokens, expected \(offsets[last] - offsets[first])")
                scores.replaceSubrange(offsets[first]..<offsets[last], with: values)
            }
            let done = min((round + comm.size) * size, count)
            progress?(done, count)
            FaultInjection.raiseStopSignal(scoringRound: round / comm.size + 1, rank: comm.rank, size: comm.size)
            if done < count, let stop, stop() { throw ScoringStopped(what: what, done: done, total: count) }
        }
        return scores
    }

    /// ℓ_base − ℓ_ref = log p_ref(y) − log p_base(y) of every loss token of `indices`, in order.
    static func excessLosses(model: LanguageModel, reference: LanguageModel, examples: [StepSequence], indices: [Int],
                             padId: Int32) -> [Float] {
        let mb = Batching.padded(examples, indices: indices, padId: padId)
        return zip(lossTokenLogProbs(reference, mb), lossTokenLogProbs(model, mb)).map { $0 - $1 }
    }

    /// log p(target) of every loss token of `mb`, in order.
    static func lossTokenLogProbs(_ model: LanguageModel, _ mb: MicroBatch) -> [Float] {
        let all = targetLogProbs(model, mb)
        return (0..<mb.mask.count).filter { mb.mask[$0] != 0 }.map { all[$0] }
    }

    /// log p(target) at every position of `mb` (0 off the loss). A model with a separate head
    /// projects chunks of rows (`Tape.fusedHead`), so the [B·T, V] logits — 1.2 GB for a
    /// micro-batch of 8×256 at Qwen2.5's 151,936 tokens — are never formed.
    static func targetLogProbs(_ model: LanguageModel, _ mb: MicroBatch) -> [Float] {
        let tape = Tape(recording: false), V = model.vocabSize
        var out = [Float](repeating: 0, count: mb.inputs.count)
        func row(_ p: Int, _ z: UnsafePointer<Float>) -> Float { targetLogProb(z, Int(mb.targets[p]), V) }
        if let m = model as? HiddenStateModel {
            let (hidden, head, layout) = m.forwardHidden(tape, inputs: mb.inputs, positions: mb.positions, segments: nil,
                                                         batch: mb.batch, seqLen: mb.seqLen)
            out.withUnsafeMutableBufferPointer { o in
                tape.fusedHead(hidden, weight: head, layout: layout) { _, rows, logits, _ in
                    for (i, p) in rows.enumerated() where mb.mask[p] != 0 { o[p] = row(p, logits + i * V) }
                }
            }
            withExtendedLifetime(hidden) {}
        } else {
            let z = model.forward(tape, inputs: mb.inputs, positions: mb.positions, segments: nil, batch: mb.batch, seqLen: mb.seqLen)
            withExtendedLifetime(z) { for p in 0..<mb.mask.count where mb.mask[p] != 0 { out[p] = row(p, z.data + p * V) } }
        }
        return out
    }
}
