/// Preference pairs for pairwise objectives (DPO, issue 14). The training set holds pair i as
/// examples 2i (chosen) and 2i + 1 (rejected) (`Dataset(pairsAt:)`); the coordinator's
/// `BatchSource` picks pair indices (`batch_size` counts pairs, as TRL's batch size does), and
/// each pair enters the step batch as two linked sequences, so `StepBatch.units` deals it to
/// one rank and one micro-batch, where both log-prob sums meet in one loss term.
public final class PairProducer: StepProducer {
    public let name = "pairs"
    public let source: BatchSource
    public init(source: BatchSource) { self.source = source }

    public func prepare(_ p: StepPreparation) -> StepBatch {
        p.decide { PairProducer.batch(step: p.step, pairs: source.batch(step: p.step), examples: p.examples) }
    }

    /// Pair k of the step at sequences 2k (chosen) and 2k + 1 (rejected), linked both ways.
    static func batch(step: Int, pairs: [Int], examples: [Example]) -> StepBatch {
        var sequences: [StepSequence] = []
        for i in pairs {
            let at = sequences.count
            var chosen = StepSequence(demonstration: examples[2 * i], index: 2 * i)
            var rejected = StepSequence(demonstration: examples[2 * i + 1], index: 2 * i + 1)
            chosen.pair = at + 1; chosen.pairRole = .chosen
            rejected.pair = at; rejected.pairRole = .rejected
            sequences += [chosen, rejected]
        }
        return StepBatch(step: step, sequences: sequences)
    }

    public var state: [UInt64] { source.state }
    public func restore(_ state: [UInt64]) throws { try source.restore(state) }
}
