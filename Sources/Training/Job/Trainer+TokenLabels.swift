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
    /// Per training example, aligned with its ids: 1 where the target ids[t] is kept, else 0.
    let labels: [[Float]]
    let kept: Int, scored: Int
    let threshold: Float

    /// Labels the sequences of a step that are training rows (demonstrations of `example`).
    func apply(to batch: inout StepBatch) {
        for i in batch.sequences.indices {
            let s = batch.sequences[i]
            guard s.origin == .demonstration, s.tokenWeights.isEmpty, labels.indices.contains(s.example),
                  labels[s.example].count == s.ids.count else { continue }
            batch.sequences[i].tokenWeights = labels[s.example]
        }
    }
}

extension Trainer {
    /// Scores the training set (collective: the examples in fixed groups of micro_batch_size,
    /// group g on rank g mod size; every rank gathers all scores and finds the same threshold).
    /// The groups do not depend on the rank count: a row's logits move in the last bits with the
    /// rows padded beside it, and over a whole training set some token sits that close to the
    /// threshold (dealt example by example, -n 2 kept 12,727 tokens where -n 1 kept 12,725). Called before any update, so `model`
    /// holds the initial weights — also when the run resumes, which restores its checkpoint later.
    static func tokenLabels(setup: RunSetup, comm: Communicator, model: LanguageModel, ratio: Float,
                            objective name: String) -> TokenLabels {
        let r = setup.recipe
        guard let reference = setup.referenceModel else { preconditionFailure("objective \(name): token labels need the reference model") }
        let examples = setup.train.examples.enumerated().map { StepSequence(demonstration: $1, index: $0) }
        let size = max(1, r.microBatchSize)
        // Per scored example: [index, score of each loss position in order].
        var local: [Float] = []
        for start in stride(from: comm.rank * size, to: examples.count, by: comm.size * size) {
            let indices = Array(start..<min(start + size, examples.count))
            let mb = Batching.padded(examples, indices: indices, padId: setup.tokenizer.padId)
            let tape = Tape(recording: false)
            let z = model.forward(tape, inputs: mb.inputs, positions: mb.positions, segments: nil, batch: mb.batch, seqLen: mb.seqLen)
            let zr = reference.forward(tape, inputs: mb.inputs, positions: mb.positions, segments: nil, batch: mb.batch, seqLen: mb.seqLen)
            withExtendedLifetime((z, zr)) {
                let V = z.columns
                for (row, e) in indices.enumerated() {
                    let positions = (row * mb.seqLen)..<((row + 1) * mb.seqLen)
                    let scored = positions.filter { mb.mask[$0] != 0 }
                    local += [Float(e), Float(scored.count)]
                    for p in scored {
                        let y = Int(mb.targets[p]), a = z.data + p * V, b = zr.data + p * V
                        // ℓ_base − ℓ_ref = log p_ref(y) − log p_base(y).
                        local.append((b[y] - SoftmaxKernels.logSumExp(b, count: V)) - (a[y] - SoftmaxKernels.logSumExp(a, count: V)))
                    }
                }
            }
        }
        var scores = [[Float]](repeating: [], count: examples.count)
        for values in comm.allgather(FloatList(local)).map(\.values) {
            var i = 0
            while i + 1 < values.count {
                let e = Int(values[i]), n = Int(values[i + 1])
                scores[e] = Array(values[(i + 2)..<(i + 2 + n)])
                i += 2 + n
            }
        }
        // The global top `ratio` (ties at the threshold kept), as the step selection decides it.
        let selection = ExcessLossSelection(StepContext(step: 0, totalSteps: 1, globalLossTokens: 0, globalSequences: 0,
                                                        statistics: scores), ratio: ratio)
        Fatal.agree(scores.joined().allSatisfy { $0 == 0 } ? "objective \(name) scores=fixed: every training token scores 0 (ℓ_base − ℓ_ref with the reference equal to the initial weights), so every token would be kept; give --ref-model a different model — the papers' is the base tuned on a small clean subset — or use --objective-arg scores=online" : nil)
        var labels: [[Float]] = examples.map { [Float](repeating: 0, count: $0.ids.count) }
        var kept = 0
        for (e, sequence) in examples.enumerated() {
            var k = 0
            for t in 1..<max(1, sequence.ids.count) where sequence.lossMask[t] != 0 {
                if k < scores[e].count, selection.keeps(scores[e][k]) { labels[e][t] = 1; kept += 1 }
                k += 1
            }
        }
        return TokenLabels(labels: labels, kept: kept, scored: Int(selection.total), threshold: selection.threshold)
    }
}
