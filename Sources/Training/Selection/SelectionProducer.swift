import Distributed
import Foundation
import Models
import TensorCore

/// The producer of `--selection NAME` (issue 13; docs/ARCHITECTURE.md, "Seams"). Each step:
/// 1. the pool, `selection_pool` × `batch_size` training rows, from the uniform sampler (a
///    pure function of seed and step, the same on every rank);
/// 2. every rank scores its share of the pool forward-only (`StepPreparation.score`: no
///    tape, one candidate per forward, the head projected per candidate) — on the reference
///    model too for learnability — and every rank receives all scores;
/// 3. the coordinator's selector decides (`StepPreparation.decide`), the decision is
///    broadcast and every rank commits it to the selector's state (UDS's queue);
/// 4. the selected candidates, with Q-Tuning's pruned loss masks, are the step batch; the
///    trainer's normalisers count their loss tokens over all ranks.
/// Its state (the sampler's seed, the selector's queue) is checkpointed as component
/// `selection`.
public final class SelectionProducer: ReportingProducer, StatefulComponent {
    public let name = "selection"
    public let stateName = "selection"
    public let selector: CandidateSelector
    public let keep: Int
    let sampler: UniformSampler
    let reference: LanguageModel?
    public private(set) var stepFields: [(String, Any)] = []
    /// The training-set indices of the last step's selected candidates.
    public private(set) var lastSelected: [Int] = []

    public init(selector: CandidateSelector, keep: Int, sampler: UniformSampler, reference: LanguageModel?) {
        self.selector = selector; self.keep = keep; self.sampler = sampler; self.reference = reference
    }

    public func prepare(_ p: StepPreparation) -> StepBatch {
        let t0 = p.comm.wallTime()
        let candidates = sampler.batch(step: p.step).map { StepSequence(demonstration: p.examples[$0], index: $0) }
        let features = selector.scorer.map { p.score(candidates, with: $0) } ?? candidates.map { _ in [] }
        var referenceFeatures: [[Float]] = []
        if let s = selector.referenceScorer, let ref = reference { referenceFeatures = p.score(candidates, with: s, model: ref) }
        let pool = SelectionPool(step: p.step, seed: p.seed, candidates: candidates, features: features,
                                 referenceFeatures: referenceFeatures, keep: keep)
        let decision = p.decide { selector.select(pool) }
        selector.commit(decision, pool: pool)
        let sequences = zip(decision.selected, decision.lossMasks).map { i, mask -> StepSequence in
            var s = candidates[i]
            if !mask.isEmpty { s.lossMask = mask }
            return s
        }
        lastSelected = sequences.map(\.example)
        // `selected_examples`: training-set rows, comma-separated (which rows trained, e.g. how
        // many corrupted ones; the same at every rank count).
        stepFields = [("selected", sequences.count), ("selection_s", p.comm.wallTime() - t0)]
            + zip(decision.statistics, decision.values).map { ($0, $1 as Any) }
            + [("selected_examples", lastSelected.map(String.init).joined(separator: ","))]
        return StepBatch(step: p.step, sequences: sequences)
    }

    public var state: [UInt64] { sampler.state }
    public func restore(_ state: [UInt64]) throws { try sampler.restore(state) }

    public func saveState() -> ComponentState {
        var s = selector.saveState()
        s.values["selector"] = .string(selector.name)
        s.values["data_order"] = .words(sampler.state)
        return s
    }

    public func restoreState(_ state: ComponentState, step: Int) throws {
        let name = try state.string("selector")
        guard name == selector.name else { throw StateError(.value, "selector", "is \(name), this run selects with \(selector.name)") }
        try sampler.restore(try state.words("data_order"))
        try selector.restoreState(state)
    }
}

extension SelectionProducer {
    /// The run's producer when `selection` is set (nil for `none`). Bad settings, and a
    /// selector needing `--ref-model` without one, stop every rank at start-up.
    public static func make(setup: RunSetup, comm: Communicator) -> SelectionProducer? {
        let r = setup.recipe
        guard r.selection != "none" else { return nil }
        // Recipe.validate (checkMethodsCombine) has refused pairs, rollouts, scored samples and
        // self-training beside a selector.
        let context = SelectionRegistry.Context(batchSize: r.batchSize, pool: r.selectionPool, seed: r.seed,
                                                maxLength: min(r.maxLength, setup.model.maxSequenceLength),
                                                vocabSize: setup.model.vocabSize, hasReference: r.refModel != nil)
        guard let (selector, keep) = Fatal.collective({ try SelectionRegistry.make(name: r.selection, args: r.selectionArgs, context: context) })
        else { return nil }
        let tokens = setup.train.examples.reduce(0) { $0 + $1.ids.count }
        Fatal.collective { try checkPoolMemory(context, meanTokens: tokens / max(1, setup.train.count)) }
        // A pool holds each row at most once: one larger than the data would repeat rows.
        Fatal.agree(context.candidates > setup.train.count
                    ? "selection_pool \(r.selectionPool) × batch_size \(r.batchSize) = \(context.candidates) candidates a step, more than the \(setup.train.count) training rows: a pool would hold rows twice; give a smaller --selection-pool or --batch-size" : nil)
        var reference: LanguageModel? = nil
        if selector.referenceScorer != nil, let path = r.refModel {
            reference = Fatal.collective { try ReferenceModel.load(path, like: setup.model, tokenizer: setup.tokenizer) }
            SameInputs.check("--ref-model \(path)", architecture: reference!, comm: comm)
            comm.broadcast(reference!.parameters.valueBuffer, root: 0)
        }
        return SelectionProducer(selector: selector, keep: keep,
                                 sampler: UniformSampler(datasetSize: setup.train.count, batchSize: context.candidates, seed: r.seed,
                                                         distinct: true),
                                 reference: reference)
    }

    /// Each step holds its whole pool: per candidate its index and a `StepSequence` with its
    /// token ids (Int32) and loss mask (UInt8), `meanTokens` on average (the training rows').
    /// A pool that cannot fit is refused at start-up as out of memory (exit 5), with both
    /// factors named — it was a failed allocation and a trap at the first step
    /// (selection_pool 1024 × batch_size 2²⁰).
    static func checkPoolMemory(_ c: SelectionRegistry.Context, meanTokens: Int,
                                available: Int? = MemoryBudget.availableBytes()) throws {
        let perCandidate = 8 + MemoryLayout<StepSequence>.stride + 5 * meanTokens
        let (bytes, overflow) = c.candidates.multipliedReportingOverflow(by: perCandidate)
        guard let available, overflow || bytes > available else { return }
        throw ModelError("out of memory: selection_pool \(c.pool) × batch_size \(c.batchSize) = \(c.candidates) candidates per step need about \(CheckedAllocation.describe(bytes: overflow ? Int.max : bytes)) for their rows (\(meanTokens) tokens each on average), more than the \(CheckedAllocation.describe(bytes: available)) available (a smaller --selection-pool or --batch-size)", outOfMemory: true)
    }
}
