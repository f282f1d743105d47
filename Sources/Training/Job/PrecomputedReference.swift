import Distributed
import Foundation
import Models
import TensorCore

/// `--precompute-ref-log-probs` (TRL's DPOConfig and KTOConfig `precompute_ref_log_probs`, with
/// `precompute_ref_batch_size`): before the first step the frozen reference — the initial
/// weights or `--ref-model` — scores log π_ref(y_t) of every loss token of the training pairs
/// (dpo) or labelled rows and their mismatched pairs (kto under kl_pairing=fixed, or
/// apo_zero_unpaired without pairs), the held-out ones and each `--eval-data`
/// pair set once, and is then released: training and
/// evaluation read the scores (`StepSequence.referenceLogProbs` → `ObjectiveInput.referenceLogProbs`)
/// instead of running the reference per micro-batch. That saves its weights (4 bytes per
/// parameter on every rank), its [N, V] logits per micro-batch and a forward per micro-batch.
/// TRL keeps a sum per answer; here each token's log-prob is kept (4 bytes per loss token on
/// every rank), so dpo's `ld_alpha` weighs them as it does live ones.
///
/// The scores are not checkpointed: a resumed run loads the reference and scores again, in the
/// same fixed groups (`Trainer.scoreInGroups`), so they are the same bit for bit at any rank
/// count. They differ from the live reference's in the last bits only (a row's logits move
/// with the rows padded beside it).
public struct PrecomputedReference {
    struct Scores {
        let values: [Float]
        /// Where each example's (or each row's mismatched pair's) loss tokens start in `values`.
        let offsets: [Int]
    }
    /// One set's scores: its rows' (pairs' or labelled rows'), and under kto's kl_pairing=fixed
    /// each row's fixed mismatched pair's (`UnpairedProducer.fixedMismatched`; none: no tokens).
    struct SetScores {
        let rows: Scores
        var mismatched: Scores? = nil
        /// Each row's mismatched pair's tokens, hashed (`idsHash`; 0: none), so a pair that is
        /// not the one scored is caught where its scores are attached.
        var pairHashes: [UInt64] = []
    }
    /// The training set's scores, example by example.
    let train: SetScores
    /// Each evaluated set's scores (pairs or labelled rows), by `CheckpointState.dataHash` of its examples.
    let evaluated: [UInt64: SetScores]
    /// What was scored: sequences (each side of a pair one, each labelled row one, each
    /// mismatched pair one) and loss tokens.
    public let sequences: Int, tokens: Int

    /// Scores `train` and the `evaluated` sets with `reference`, and with `mismatched` (kto's
    /// fixed pairs of a set's rows) those too. Collective; a `stop` (`Trainer.scoreInGroups`) may end it.
    static func score(reference: LanguageModel, train: [Example], evaluated: [[Example]],
                      mismatched: (([Example]) -> [StepSequence?])? = nil, batchSize: Int, padId: Int32,
                      comm: Communicator, show: ((String) -> Void)?, stop: (() -> Bool)? = nil) throws(ScoringStopped) -> PrecomputedReference {
        let progress = comm.isCoordinator ? show.map { EvalProgress(label: "precompute_ref_log_probs", show: $0) } : nil
        func scores<S: TokenSequence>(_ sequences: [S], _ name: String) throws(ScoringStopped) -> Scores {
            let offsets = TokenLabels.offsets(sequences)
            let values = try Trainer.scoreInGroups(count: sequences.count, offsets: offsets, size: batchSize, comm: comm,
                                                   what: "precompute_ref_log_probs, " + name, progress: progress.map { p in { p.update(name, done: $0, total: $1) } },
                                                   stop: stop) {
                Trainer.lossTokenLogProbs(reference, Batching.padded(sequences, indices: $0, padId: padId))
            }
            return Scores(values: values, offsets: offsets)
        }
        var counted = (sequences: 0, tokens: 0)
        func setScores(_ examples: [Example], _ name: String) throws(ScoringStopped) -> SetScores {
            var set = SetScores(rows: try scores(examples, name + " sequences scored"))
            counted.sequences += examples.count; counted.tokens += set.rows.values.count
            if let pairs = mismatched?(examples) {
                // A row without a pair scores nothing: an empty sequence in its place.
                let none = StepSequence(example: -1, origin: .mismatched, ids: [], lossMask: [], promptLength: 0)
                set.mismatched = try scores(pairs.map { $0 ?? none }, name + " mismatched pairs scored")
                set.pairHashes = pairs.map { $0.map { Self.idsHash($0.ids) } ?? 0 }
                counted.sequences += pairs.compactMap { $0 }.count; counted.tokens += set.mismatched!.values.count
            }
            return set
        }
        let trained = try setScores(train, "training")
        var sets: [UInt64: SetScores] = [:]
        for examples in evaluated {
            let hash = CheckpointState.dataHash(examples)
            if sets[hash] == nil { sets[hash] = try setScores(examples, "held-out and --eval-data") }
        }
        return PrecomputedReference(train: trained, evaluated: sets, sequences: counted.sequences, tokens: counted.tokens)
    }

    /// Attaches the scores to a training step's sequences (`examples`: the training set).
    func applyTraining(to batch: inout StepBatch, examples: [Example]) {
        Self.apply(train, to: &batch, examples: examples)
    }

    /// Attaches the scores of an evaluated set (one `score` was given) to its batch.
    func applyEvaluated(to batch: inout StepBatch, examples: [Example]) {
        guard let scores = evaluated[CheckpointState.dataHash(examples)] else {
            preconditionFailure("precompute_ref_log_probs: an evaluated set of \(examples.count) sequences was not scored before the first step (Trainer.precomputeReferenceIfNeeded(evaluatedPairs:) scores the sets a run evaluates)")
        }
        Self.apply(scores, to: &batch, examples: examples)
    }

    /// Each demonstration sequence of a pair, and each labelled row (chosen: desirable, rejected:
    /// undesirable), gets its example's scores at its loss tokens, and each mismatched pair its
    /// row's pair's (kto's kl_pairing=fixed).
    static func apply(_ set: SetScores, to batch: inout StepBatch, examples: [Example]) {
        func values(_ s: StepSequence, _ scores: Scores, _ what: String) -> [Float] {
            let first = scores.offsets[s.example], trained = TokenLabels.trainedPositions(s)
            precondition(first + trained.count == scores.offsets[s.example + 1], "precompute_ref_log_probs: row \(s.example)\(what) has \(trained.count) loss tokens, scored \(scores.offsets[s.example + 1] - first)")
            var values = [Float](repeating: 0, count: s.ids.count)
            for (k, t) in trained.enumerated() { values[t] = scores.values[first + k] }
            return values
        }
        for i in batch.sequences.indices {
            let s = batch.sequences[i]
            if s.origin == .mismatched {
                guard let mismatched = set.mismatched else {
                    preconditionFailure("precompute_ref_log_probs: mismatched sequence \(i) of row \(s.example), and no mismatched pairs were scored (kto's kl_pairing=step is refused beside it)")
                }
                precondition(s.example >= 0 && s.example < examples.count && set.pairHashes[s.example] == Self.idsHash(s.ids),
                             "precompute_ref_log_probs: mismatched sequence \(i) is not the pair of row \(s.example) that was scored")
                batch.sequences[i].referenceLogProbs = values(s, mismatched, "'s mismatched pair")
                continue
            }
            guard s.origin == .demonstration, s.pairRole == .chosen || s.pairRole == .rejected else { continue }
            precondition(s.example >= 0 && s.example < examples.count && examples[s.example].ids == s.ids,
                         "precompute_ref_log_probs: sequence \(i) is not the row \(s.example) its scores belong to")
            batch.sequences[i].referenceLogProbs = values(s, set.rows, "")
        }
    }

    /// A sequence's token ids hashed (`XXHash64`, as `CheckpointState.dataHash` hashes data), never 0.
    static func idsHash(_ ids: [Int32]) -> UInt64 {
        var h = XXHash64()
        ids.withUnsafeBytes { h.update($0) }
        return max(h.finalize(), 1)
    }
}

/// A run's reference model, shared by every copy of its `RunSetup`: released once its scores
/// stand in for it, so no holder of a setup keeps its weights alive.
final class ReferenceSlot {
    private(set) var model: LanguageModel?
    private(set) var precomputed: PrecomputedReference?
    init(_ model: LanguageModel?) { self.model = model }

    func release(for scores: PrecomputedReference) { precomputed = scores; model = nil }
}

extension Trainer {
    /// With precompute_ref_log_probs in effect (`Recipe.precomputesReference`): the reference scores the training pairs
    /// (or labelled rows), the held-out ones and `evaluatedPairs` (the `--eval-data` pair sets), and this trainer's
    /// setup — every copy of it — lets go of it; nil when there is nothing to do (off, or scored
    /// already). `TrainingJob` calls it after the resume check, so a refused resume scores
    /// nothing; `prepare` calls it for callers that step a trainer directly. Collective; with
    /// `stop` (`scoreInGroups`), a stop signal ends the pass (`ScoringStopped`).
    @discardableResult
    func precomputeReferenceIfNeeded(evaluatedPairs: [Dataset] = [], stop: (() -> Bool)? = nil) throws(ScoringStopped) -> PrecomputedReference? {
        guard setup.recipe.precomputesReference(setup.objective), setup.precomputedReference == nil,
              let reference = setup.referenceModel else { return nil }
        let started = Date(), recipe = setup.recipe
        // TRL's precompute_ref_batch_size counts examples (a pair each under dpo, a row under kto);
        // micro_batch_size counts sequences.
        let perExample = setup.objective.requirements.pairs ? 2 : 1
        let size = recipe.precomputeRefBatchSize > 0 ? perExample * recipe.precomputeRefBatchSize : recipe.microBatchSize
        // kto's KL term (kl_pairing=fixed): each row's mismatched pair as the step and the evaluation pair it.
        let maxLength = Self.unpairedMaxLength(setup)
        let pairs = (setup.objective as? KTOObjective)?.estimatesKL == true ? { UnpairedProducer.fixedMismatched($0, maxLength: maxLength) } : nil
        let scored = try PrecomputedReference.score(reference: reference, train: setup.train.examples,
                                                evaluated: ([setup.heldOutPairs ?? setup.heldOutLabelled].compactMap { $0 } + evaluatedPairs).map(\.examples),
                                                mismatched: pairs, batchSize: size, padId: setup.tokenizer.padId, comm: comm, show: show, stop: stop)
        setup.referenceSlot.release(for: scored)
        if comm.isCoordinator {
            show?(String(format: "precompute_ref_log_probs: the reference scored %d sequences (%d loss tokens) in %.1f s and is released (%.1f MB of weights on each rank)",
                         scored.sequences, scored.tokens, Date().timeIntervalSince(started), Double(reference.parameters.parameterCount) * 4 / 1e6))
        }
        return scored
    }
}

extension Recipe {
    /// precompute_ref_log_probs is in effect: set, not switched off by an `--objective` flag over
    /// the recipe file that set it to an objective that cannot use it (`checkPrecomputedReference`
    /// refused the rest): the objective reads the reference's log-probs only.
    func precomputesReference(_ objective: Objective) -> Bool {
        self.precomputeRefLogProbs && objective.requirements.precomputableReference
    }
}
