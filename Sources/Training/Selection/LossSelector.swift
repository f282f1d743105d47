/// `--selection loss`: the candidates with the highest (`order=highest`, the default) or
/// lowest (`order=lowest`) current loss, the token-mean −log p(target) over the candidate's
/// loss tokens under the weights the step starts from — online hard-example mining
/// (Loshchilov & Hutter, arXiv 1511.06343 §3) or its easy-first opposite.
/// Features: `LossScorer`'s [Σ −log p, loss tokens].
public final class LossSelector: CandidateSelector {
    public let name = "loss"
    public let highest: Bool
    public let scorer: CandidateScorer? = LossScorer()

    public init(order: String) throws {
        guard order == "highest" || order == "lowest" else {
            throw BatchSelectionError("selection loss: order=\(order) must be highest or lowest")
        }
        highest = order == "highest"
    }

    /// Token-mean loss of [Σ, n] features (0 for a candidate without loss tokens).
    static func meanLoss(_ f: [Float]) -> Double { f.count >= 2 && f[1] > 0 ? Double(f[0]) / Double(f[1]) : 0 }

    public func describe(_ pool: SelectionPool) -> [(String, [Double])] { [("loss", pool.features.map(Self.meanLoss))] }

    public func select(_ pool: SelectionPool) -> SelectionDecision {
        let loss = pool.features.map(Self.meanLoss)
        // A candidate without loss tokens trains nothing: ranked last in either order (its 0
        // ranked it easiest, first under order=lowest). Non-finite keys go last in `top`.
        let ranked = zip(pool.features, loss).map { f, l in f.count >= 2 && f[1] > 0 ? l : .nan }
        let chosen = SelectionRanking.top(ranked, k: pool.keep, largest: highest)
        return SelectionDecision(selected: chosen, statistics: [
            ("selection_pool_loss", SelectionRanking.mean(loss, at: Array(loss.indices))),
            ("selection_selected_loss", SelectionRanking.mean(loss, at: chosen))])
    }
}
