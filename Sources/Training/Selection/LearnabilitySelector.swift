/// `--selection learnability`: LoBaSS (arXiv 2310.13008 §3.2) — learnability of a candidate
/// = L_cur − L_ref, its token-mean loss under the current weights minus under a reference
/// model (`--ref-model`: the paper's reference is the initial model fine-tuned on the full
/// set), or (L_cur − L_ref)/L_cur with `normalise=true`. The highest learnability trains:
/// data the model can still learn (high now, low for the reference), not noise (high for both)
/// nor what it already knows (low for both).
public final class LearnabilitySelector: CandidateSelector {
    public let name = "learnability"
    public let normalise: Bool
    public let scorer: CandidateScorer? = LossScorer()
    public var referenceScorer: CandidateScorer? { LossScorer() }

    public init(normalise: Bool) { self.normalise = normalise }

    static func learnability(current: Double, reference: Double, normalise: Bool) -> Double {
        let d = current - reference
        return normalise ? (current > 0 ? d / current : 0) : d
    }

    func scores(_ pool: SelectionPool) -> (current: [Double], reference: [Double], learnability: [Double]) {
        let cur = pool.features.map(LossSelector.meanLoss), ref = pool.referenceFeatures.map(LossSelector.meanLoss)
        return (cur, ref, zip(cur, ref).map { Self.learnability(current: $0, reference: $1, normalise: normalise) })
    }

    public func describe(_ pool: SelectionPool) -> [(String, [Double])] {
        let s = scores(pool)
        return [("loss", s.current), ("reference_loss", s.reference), ("learnability", s.learnability)]
    }

    public func select(_ pool: SelectionPool) -> SelectionDecision {
        let (cur, _, score) = scores(pool)
        let chosen = SelectionRanking.top(score, k: pool.keep)
        return SelectionDecision(selected: chosen, statistics: [
            ("selection_pool_learnability", SelectionRanking.mean(score, at: Array(score.indices))),
            ("selection_selected_learnability", SelectionRanking.mean(score, at: chosen)),
            ("selection_selected_loss", SelectionRanking.mean(cur, at: chosen))])
    }
}
