import Distributed
import Foundation
import Models
import TensorCore

/// Phase 1 of a step: everything before the gradient pass, collective on every rank.
extension Trainer {
    struct PreparedStep {
        /// The whole step's sequences, identical on every rank.
        var batch: StepBatch
        /// This rank's share (sequences rank, rank + size, …) as micro-batches; their row
        /// indices point into `batch.sequences`.
        var micro: [MicroBatch]
        var context: StepContext
        var globalTokens: Int   // non-padding input tokens, all ranks
        /// Every token of the step's sequences, all ranks: the input positions and each
        /// sequence's last token, a target only here but an input in transformers, which is
        /// what TRL's `num_tokens` counts (its attention mask's sum).
        var globalSequenceTokens: Int
    }

    func prepare(_ step: Int) -> PreparedStep {
        let r = setup.recipe
        try! estimateOptimalValuesIfNeeded()   // a2po's stage 1, before the first generation (no stop check: it alone throws)
        // The producer decides the step (the coordinator decides, collective work on all ranks).
        var batch = source.prepare(StepPreparation(step: step, comm: comm, model: model, examples: setup.train.examples,
                                                   tokenizer: setup.tokenizer, seed: r.seed,
                                                   microBatchSize: r.microBatchSize))
        // Scored data has no behaviour policy: the ratio is to the detached current log-probs (ScoredDataProducer).
        if objective.requirements.behaviourLogProbs && !(source is ScoredDataProducer) {
            // The batch is the same on every rank, so every rank reaches the same verdict.
            let missing = batch.sequences.firstIndex { $0.behaviourLogProbs.isEmpty && $0.lossMask.contains(1) }
            Fatal.agree(missing.map { "objective \(objective.name) needs behaviour log-probs, but producer \(source.name) gave sequence \($0) of step \(step + 1) none" },
                        code: Fatal.Code.training)
        }
        // No stop check here (it alone throws): TrainingJob scored before the first step already.
        try! scoreTokenLabelsIfNeeded()
        try! precomputeReferenceIfNeeded()   // --precompute-ref-log-probs (dpo, kto), before the first step
        tokenLabels?.apply(to: &batch)
        setup.precomputedReference?.applyTraining(to: &batch, examples: setup.train.examples)
        let (units, estimates) = Self.gradientAndEstimateUnits(batch)
        let micro = microBatches(batch.sequences, units: comm.shard.mine(units))
        // Global normalisers (allreduced, so no rank assumes the others).
        let present = micro.map(inputsPresent)
        var counts: [Int64] = [Int64(micro.reduce(0) { $0 + $1.lossTokens }),
                               Int64(micro.reduce(0) { $0 + sequenceCount($1) }),
                               Int64(present.reduce(0) { $0 + $1.positions }), Int64(present.reduce(0) { $0 + $1.sequences })]
        comm.allreduce(&counts, op: .sum)
        var context = StepContext(step: step, totalSteps: r.steps, globalLossTokens: Int(counts[0]),
                                  globalSequences: Int(counts[1]), seed: r.seed)
        context.lossTokensPerStep = batch.lossTokensPerStep
        context.onPolicy = batch.onPolicy
        context.logitTemperature = stepTemperature(batch)
        if let every = objective.requirements.oldPolicyRefresh, let old = oldPolicy, step % max(every, 1) == 0 {
            old.copyParameters(from: model)
        }
        if objective.requirements.statisticsPass {
            context.statistics = gatherStatistics(statisticsMicroBatches(batch, estimates: estimates, gradient: micro),
                                                  context: context, sequences: batch.sequences)
        }
        objective.beginStep(context)
        // (A reward model's sequences end with a pad that is only a target, `Dataset.withTrailingPad`:
        // their own last token is an input already.)
        return PreparedStep(batch: batch, micro: micro, context: context, globalTokens: Int(counts[2]),
                            globalSequenceTokens: Int(counts[2] + (objective.requirements.sequenceScores ? 0 : counts[3])))
    }

    /// The step batch's units for the gradient pass, and apart those of its `.mismatched`
    /// sequences (KTO's KL estimate: UnpairedProducer), which only the statistics pass reads.
    static func gradientAndEstimateUnits(_ batch: StepBatch) -> (gradient: [[Int]], estimate: [[Int]]) {
        let units = batch.units
        let mismatched = units.map { $0.allSatisfy { batch.sequences[$0].origin == .mismatched } }
        return (zip(units, mismatched).filter { !$0.1 }.map(\.0), zip(units, mismatched).filter { $0.1 }.map(\.0))
    }

    /// What the statistics pass reads on this rank: its share of the `.mismatched` sequences
    /// (`estimates`) when the step has some, else its gradient micro-batches.
    func statisticsMicroBatches(_ batch: StepBatch, estimates: [[Int]], gradient micro: [MicroBatch]) -> [MicroBatch] {
        estimates.isEmpty ? micro : microBatches(batch.sequences, units: comm.shard.mine(estimates))
    }

    /// The objective's statistics of each of this rank's micro-batches (`requirements.statisticsPass`:
    /// a forward without gradients), gathered from every rank. Collective.
    func gatherStatistics(_ micro: [MicroBatch], context: StepContext, sequences: [StepSequence], dropout: Bool = true) -> [[Float]] {
        let local = micro.enumerated().flatMap { k, mb in
            let f = forward(mb, index: k, context: context, sequences: sequences, tape: Tape(recording: false), dropout: dropout,
                            companions: !objective.requirements.statisticsFromPolicyAlone)
            return withExtendedLifetime(f) { objective.statistics(f.input) }
        }
        return comm.allgather(FloatList(local)).map(\.values)
    }

    /// The run's logit temperature, but 1 on ReLIFT's SFT steps: its code trains the
    /// demonstrations at temperature 1 (`sft_update_policy`), its RL steps at the sampling one.
    /// (CHORD's and SRFT's demonstrations share a batch with rollouts, all at the temperature.)
    func stepTemperature(_ batch: StepBatch) -> Float {
        objective is ReLIFTObjective && ReLIFTObjective.isSFTStep(batch.sequences) ? 1 : logitTemperature
    }

    /// The input positions of `mb` that are not padding, and the sequences they belong to (each
    /// packed document; no padding row), in one pass over its segments.
    func inputsPresent(_ mb: MicroBatch) -> (positions: Int, sequences: Int) {
        var positions = 0, sequences = 0
        for row in 0..<mb.batch {
            var last: Int32 = -1
            for s in mb.segments[(row * mb.seqLen)..<((row + 1) * mb.seqLen)] where s >= 0 {
                positions += 1
                if s != last { sequences += 1; last = s }
            }
        }
        return (positions, sequences)
    }

    /// This rank's units as micro-batches of `micro_batch_size` rows (padded), or packed rows
    /// grouped `micro_batch_size` at a time; a unit (a pair) is never split between
    /// micro-batches, so a micro-batch may hold more rows than the size to keep one whole.
    func microBatches(_ sequences: [StepSequence], units: [[Int]]) -> [MicroBatch] {
        let r = setup.recipe, pad = setup.tokenizer.padId
        var unitOf: [Int: Int] = [:]
        for (u, members) in units.enumerated() { for m in members { unitOf[m] = u } }
        if r.packing {
            let all = Batching.packed(sequences, indices: units.flatMap { $0 }, seqLen: min(r.maxLength, model.maxSequenceLength), padId: pad)
            let rowUnits = all.rowExamples.map { Set($0.compactMap { unitOf[$0] }) }
            return groups(count: all.batch, size: r.microBatchSize, joined: { !rowUnits[$0].isDisjoint(with: rowUnits[$0 - 1]) })
                .map { rows(of: all, from: $0.lowerBound, count: $0.count) }
        }
        let mine = units.flatMap { $0 }
        return groups(count: mine.count, size: r.microBatchSize, joined: { unitOf[mine[$0]] == unitOf[mine[$0 - 1]] })
            .map { Batching.padded(sequences, indices: Array(mine[$0]), padId: pad) }
    }

    /// 0..<count cut into consecutive groups of `size`, except that item i stays with item
    /// i − 1 when `joined(i)`.
    func groups(count: Int, size: Int, joined: (Int) -> Bool) -> [Range<Int>] {
        var out: [Range<Int>] = [], start = 0
        for i in 0..<count where i > start && i - start >= size && !joined(i) {
            out.append(start..<i)
            start = i
        }
        if start < count { out.append(start..<count) }
        return out
    }

    /// Sequences with at least one loss token.
    func sequenceCount(_ mb: MicroBatch) -> Int {
        var seen = Set<Int>()
        for i in 0..<mb.mask.count where mb.mask[i] != 0 { seen.insert(mb.rowExamples[i / mb.seqLen][Int(mb.segments[i])]) }
        return seen.count
    }

    func rows(of mb: MicroBatch, from start: Int, count: Int) -> MicroBatch {
        var m = mb
        let r = (start * mb.seqLen)..<((start + count) * mb.seqLen)
        m.batch = count
        m.inputs = Array(mb.inputs[r]); m.targets = Array(mb.targets[r]); m.mask = Array(mb.mask[r])
        m.positions = Array(mb.positions[r]); m.segments = Array(mb.segments[r])
        if !mb.behaviourLogProbs.isEmpty { m.behaviourLogProbs = Array(mb.behaviourLogProbs[r]) }
        if !mb.tokenWeights.isEmpty { m.tokenWeights = Array(mb.tokenWeights[r]) }
        if !mb.referenceLogProbs.isEmpty { m.referenceLogProbs = Array(mb.referenceLogProbs[r]) }
        m.exampleOfRow = Array(mb.exampleOfRow[start..<(start + count)])
        m.rowExamples = Array(mb.rowExamples[start..<(start + count)])
        m.lossTokens = Int(m.mask.reduce(0, +))
        return m
    }
}

/// A float array crossing ranks (statistics passes).
struct FloatList: WireCodable {
    var values: [Float]
    init(_ values: [Float]) { self.values = values }
    func write(to w: inout WireWriter) { w.put(values) }
    init(from r: inout WireReader) { values = r.getFloats() }
}
