import Distributed
import Models

/// `sft-dist select`: the online selectors' scorers over a whole dataset (offline data
/// selection). Candidates are dealt over ranks and scored forward-only exactly as in training
/// (`CandidateScoring`); every rank receives all scores; the dataset is then cut into
/// consecutive pools of `poolSize` rows (default: one pool, the whole dataset) and each pool
/// keeps `fraction` of its rows by the selector's rule, the selector's state (UDS's queue)
/// carrying over from pool to pool. Rows are kept whole: Q-Tuning's token pruning applies
/// only online.
public enum OfflineSelection {
    public struct Result {
        /// Dataset indices kept, ascending.
        public var kept: [Int]
        /// Per dataset index: the selector's named scores.
        public var scores: [[(String, Double)]]
    }

    public static func run(selector: CandidateSelector, fraction: Double, poolSize: Int?, dataset: Dataset, model: LanguageModel,
                           reference: LanguageModel?, padId: Int32, seed: UInt64, comm: Communicator) -> Result {
        let candidates = dataset.examples.enumerated().map { StepSequence(demonstration: $1, index: $0) }
        let features = selector.scorer.map { CandidateScoring.score(candidates, with: $0, model: model, comm: comm, padId: padId) }
            ?? candidates.map { _ in [] }
        var referenceFeatures: [[Float]] = []
        if let s = selector.referenceScorer, let ref = reference {
            referenceFeatures = CandidateScoring.score(candidates, with: s, model: ref, comm: comm, padId: padId)
        }
        var result = Result(kept: [], scores: Array(repeating: [], count: candidates.count))
        let size = max(1, poolSize ?? candidates.count)
        // Each pool keeps its share of the running total round(fraction · rows so far), so the
        // pools together keep round(fraction · N): rounding each pool on its own kept 2 of every
        // 3 at --keep 0.5 --pool 3, and keeping at least one per pool kept 100 of 300 rows at
        // --keep 0.1 --pool 3. A pool whose share rounds to 0 keeps none (its scores are written).
        func keptBefore(_ row: Int) -> Int { Int((fraction * Double(row)).rounded()) }
        for (k, start) in stride(from: 0, to: candidates.count, by: size).enumerated() {
            let range = start..<min(start + size, candidates.count)
            let pool = SelectionPool(step: k, seed: seed, candidates: Array(candidates[range]), features: Array(features[range]),
                                     referenceFeatures: referenceFeatures.isEmpty ? [] : Array(referenceFeatures[range]),
                                     keep: keptBefore(range.upperBound) - keptBefore(range.lowerBound))
            // Scores as the decision sees them (before the pool's sketches join the queue).
            for (name, values) in selector.describe(pool) {
                for (i, v) in values.enumerated() { result.scores[start + i].append((name, v)) }
            }
            let decision = selector.select(pool)
            selector.commit(decision, pool: pool)
            result.kept += decision.selected.map { $0 + start }
        }
        return result
    }
}
