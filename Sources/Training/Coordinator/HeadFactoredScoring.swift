import Models
import TensorCore

/// A candidate's last hidden states, for a `HeadFactoredScorer`: the logits are
/// hidden · op(head) (`HiddenStateModel`), never formed.
public struct CandidateHidden {
    public let rows: Int
    public let width: Int
    public let hidden: UnsafePointer<Float>
}

/// A candidate scorer that reads the logits L = H·op(W) only through products with the head W
/// that do not depend on the candidate (UDS: the Gram factor of op(W)·op(W)ᵀ and the sketch's
/// op(W)·C2). `CandidateScoring` asks for them once per scoring pass — the weights do not
/// change during one — and then scores each candidate from its hidden states, so the
/// candidate's [n, V] logits are never formed. On a model without a separate head the
/// logits path (`CandidateScorer.score`) is used; both give the same scores up to float
/// rounding (`HeadFactoredScoringTests`).
public protocol HeadFactoredScorer: CandidateScorer {
    func prepared(head: UnsafePointer<Float>, vocab: Int, width: Int, layout: WeightLayout) -> (CandidateHidden) -> [Float]
}

/// One scoring pass over a model: the factored scorer's per-pass products, built from the
/// head on the first candidate and reused for the rest.
final class CandidateScoringPass {
    let scorer: CandidateScorer
    let model: LanguageModel
    let padId: Int32
    private var factored: ((CandidateHidden) -> [Float])?

    init(scorer: CandidateScorer, model: LanguageModel, padId: Int32) {
        self.scorer = scorer; self.model = model; self.padId = padId
    }

    /// The factored score of a candidate whose hidden states are [n, hidden.columns], or nil
    /// when the scorer needs the logits.
    func factoredScore(hidden: Tensor, head: Tensor, layout: WeightLayout, rows n: Int) -> [Float]? {
        guard let f = scorer as? HeadFactoredScorer else { return nil }
        let d = hidden.columns
        if factored == nil {
            factored = f.prepared(head: head.data, vocab: model.vocabSize, width: d, layout: layout)
        }
        return factored!(CandidateHidden(rows: n, width: d, hidden: hidden.data))
    }
}
