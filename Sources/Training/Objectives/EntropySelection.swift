import Foundation
import TensorCore

/// The step's highest-entropy loss tokens, for the objectives that keep a term only there
/// (Prefix-RFT's `entropy_mask`, grpo's `top_entropy_quantile`): the statistics pass gives each
/// micro-batch's (sequence id, position, entropy) triples, gathered from every rank; a threshold
/// τ picks the tokens at or above it, keyed by (sequence, position), so the gradient pass finds
/// its rows without re-deriving the decision from recomputed logits.
struct EntropySelection {
    /// The threshold (+∞: none kept).
    var tau: Float
    /// (sequence, position) keys of the kept tokens.
    var kept: Set<Int>

    static func key(sequence: Int, position: Int) -> Int { sequence << 32 | position }

    /// (sequence id, position among its rows, entropy of softmax(z)) of the loss rows of `input`
    /// that `include` takes.
    static func statistics(_ input: ObjectiveInput, where include: (Int) -> Bool = { _ in true }) -> [Float] {
        let index = SequenceIndex(input.sequenceId)
        var out: [Float] = []
        for r in 0..<input.rows where input.mask[r] != 0 && include(r) {
            let z = input.logits + r * input.vocab
            let h = LogitRow.addScaledSoftmax(nil, z, lse: SoftmaxKernels.logSumExp(z, count: input.vocab), input.vocab, scale: 0)
            out += [Float(input.sequenceId[r]), Float(index.position[r]), Float(h)]
        }
        return out
    }

    /// Every rank's tokens of the step, keyed, with their entropies.
    static func tokens(_ context: StepContext) -> [(key: Int, entropy: Float)] {
        var tokens: [(key: Int, entropy: Float)] = []
        for rank in context.statistics {
            var i = 0
            while i + 2 < rank.count { tokens.append((key(sequence: Int(rank[i]), position: Int(rank[i + 1])), rank[i + 2])); i += 3 }
        }
        return tokens
    }

    /// The tokens of `tokens` at or above `tau`.
    init(_ tokens: [(key: Int, entropy: Float)], tau: Float) {
        self.tau = tau
        kept = Set(tokens.filter { $0.entropy >= tau }.map(\.key))
    }

    /// Whether row `r` of `input` (at `position` among its sequence's rows) is kept.
    func keeps(_ input: ObjectiveInput, row r: Int, position: Int) -> Bool {
        kept.contains(Self.key(sequence: Int(input.sequenceId[r]), position: position))
    }
}
