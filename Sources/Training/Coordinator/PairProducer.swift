/// Preference pairs for pairwise objectives (DPO, issue 14). The training set holds pair i as
/// examples 2i (chosen) and 2i + 1 (rejected) (`Dataset(pairsAt:)`); the coordinator's
/// `BatchSource` picks pair indices (`batch_size` counts pairs, as TRL's batch size does), and
/// each pair enters the step batch as two linked sequences, so `StepBatch.units` deals it to
/// one rank and one micro-batch, where both log-prob sums meet in one loss term. A triple's
/// gold answer (TPO: `Example.gold` on the chosen example) follows its pair as a third sequence.
public final class PairProducer: StepProducer {
    public let name = "pairs"
    public let source: BatchSource
    public init(source: BatchSource) { self.source = source }

    public func prepare(_ p: StepPreparation) -> StepBatch {
        p.decide { PairProducer.batch(step: p.step, pairs: source.batch(step: p.step), examples: p.examples) }
    }

    /// Each pair of the step as its chosen sequence and its rejected one, linked both ways, then
    /// its gold answer, if any, linked to the chosen one.
    static func batch(step: Int, pairs: [Int], examples: [Example]) -> StepBatch {
        var sequences: [StepSequence] = []
        for i in pairs {
            let at = sequences.count
            var chosen = StepSequence(demonstration: examples[2 * i], index: 2 * i)
            var rejected = StepSequence(demonstration: examples[2 * i + 1], index: 2 * i + 1)
            chosen.pair = at + 1; chosen.pairRole = .chosen
            rejected.pair = at; rejected.pairRole = .rejected
            sequences += [chosen, rejected]
            if let g = examples[2 * i].gold {
                var gold = StepSequence(example: 2 * i, origin: .demonstration, ids: g.ids, lossMask: g.lossMask, promptLength: g.promptLength)
                gold.advantage = 1; gold.pair = at; gold.pairRole = .gold
                sequences.append(gold)
            }
        }
        return StepBatch(step: step, sequences: sequences)
    }

    public var state: [UInt64] { source.state }
    public func restore(_ state: [UInt64]) throws { try source.restore(state) }
}
