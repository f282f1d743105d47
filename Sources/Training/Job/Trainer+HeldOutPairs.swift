import Foundation
import Models
import TensorCore

/// The trainer's own loss on held-out preference pairs: what TRL's `DPOTrainer` reports when
/// it evaluates (`eval_loss` is the DPO loss; `eval_rewards/*`, `eval_logps/*`,
/// `eval_logits/*`, `eval_entropy`, `eval_mean_token_accuracy` its diagnostics), where a
/// language-model NLL of the chosen answers would sit beside a DPO training loss on another
/// scale. Loss and diagnostics are the objective's (`DPOObjective`), with every count global.
public struct ObjectiveEvaluation {
    public var objective: String
    public var loss: Double
    /// Each diagnostic's mean over the held-out set (pairs or loss tokens, as the objective
    /// counts it), sorted by name.
    public var figures: [(name: String, value: Double)]

    public func figure(_ name: String) -> Double? { figures.first { $0.name == name }?.value }
}

extension Trainer {
    /// Every held-out pair once (chosen at 2i, rejected at 2i + 1, as `Dataset(pairsAt:)`),
    /// dealt over ranks and micro-batches as a training step deals pairs, without dropout (LoRA's
    /// is a training-time mask; transformers' `model.eval()` turns it off) and without gradients.
    /// Collective: every rank calls it with the same pairs.
    public func evaluatePairs(_ pairs: Dataset) -> ObjectiveEvaluation {
        let batch = PairProducer.batch(step: 0, pairs: Array(0..<pairs.pairCount), examples: pairs.examples)
        let micro = microBatches(batch.sequences, units: comm.shard.mine(batch.units))
        var counts: [Int64] = [Int64(micro.reduce(0) { $0 + $1.lossTokens }), Int64(micro.reduce(0) { $0 + sequenceCount($1) })]
        comm.allreduce(&counts, op: .sum)
        let r = setup.recipe
        let context = StepContext(step: 0, totalSteps: r.steps, globalLossTokens: Int(counts[0]),
                                  globalSequences: Int(counts[1]), seed: r.seed)
        let noGrad = Tape(recording: false)
        var total = ObjectiveResult(loss: 0)
        for mb in micro {
            let segments = r.packing ? mb.segments : nil
            let logits = model.forward(noGrad, inputs: mb.inputs, positions: mb.positions, segments: segments, batch: mb.batch, seqLen: mb.seqLen)
            let reference = setup.referenceModel.map {
                $0.forward(noGrad, inputs: mb.inputs, positions: mb.positions, segments: segments, batch: mb.batch, seqLen: mb.seqLen)
            }
            let (seqId, seqTokens) = sequenceIdentities(mb)
            var input = ObjectiveInput(rows: logits.rows, vocab: logits.columns, logits: logits.data, targets: mb.targets,
                                       mask: mb.mask, sequenceLossTokens: seqTokens, sequenceId: seqId,
                                       context: context, sequences: batch.sequences)
            input.referenceLogits = reference.map { UnsafePointer($0.data) }
            // The objective writes its gradient; evaluation has no use for it.
            var unused = [Float](repeating: 0, count: logits.rows * logits.columns)
            let result = withExtendedLifetime((logits, reference)) {
                unused.withUnsafeMutableBufferPointer { objective.lossAndGradient(input, dlogits: $0.baseAddress!) }
            }
            total = merge(total, result)
        }
        let (sums, names) = reduceScalars(loss: total.loss, bad: false, diag: total.diagnostics, counts: total.diagnosticCounts)
        let figures = names.enumerated().map { i, name -> (name: String, value: Double) in
            let count = sums[2 + names.count + i]
            return (name, count > 0 ? sums[2 + i] / count : .nan)
        }
        return ObjectiveEvaluation(objective: objective.name, loss: sums[0], figures: figures)
    }
}
