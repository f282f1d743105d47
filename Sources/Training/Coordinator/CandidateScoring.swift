import Distributed
import Models
import TensorCore

/// One candidate's positions as a scorer sees them: `rows` positions of logits (row t
/// predicts `targets[t]` = ids[t + 1]) and the loss mask of those targets.
public struct CandidateView {
    public let rows: Int
    public let vocab: Int
    public let logits: UnsafePointer<Float>
    public let targets: ArraySlice<Int32>
    public let mask: ArraySlice<Float>
}

/// A pre-step score of a candidate sequence from a forward pass without gradients (loss,
/// nuclear norm, entropy, a sketch: issue 13's selectors; rloo's log-likelihoods, `TargetLogProbScorer`).
public protocol CandidateScorer {
    func score(_ candidate: CandidateView) -> [Float]
}

/// [Σ −log p(target) over loss tokens, loss-token count]: the current loss.
public struct LossScorer: CandidateScorer {
    public init() {}
    public func score(_ c: CandidateView) -> [Float] {
        var sum = 0.0, n: Float = 0
        for (t, (y, m)) in zip(c.targets, c.mask).enumerated() where m != 0 {
            let z = c.logits + t * c.vocab
            sum += Double(SoftmaxKernels.logSumExp(z, count: c.vocab) - z[Int(y)])
            n += 1
        }
        return [Float(sum), n]
    }
}

enum CandidateScoring {
    /// Candidates dealt over ranks (`RankShard`), each scored alone without a tape, gathered
    /// back into candidate order on every rank.
    ///
    /// One candidate per forward (batch 1, no padding): its score is then the same bits
    /// whichever rank computes it and whatever else that rank scores, so a selection over the
    /// scores does not depend on the rank count. On a `HiddenStateModel` the LM head runs
    /// here, over that one candidate's rows, so no micro-batch's logits are ever held — only
    /// the candidate's [n, V], which UDS's nuclear norm needs whole.
    static func score(_ candidates: [StepSequence], with scorer: CandidateScorer, model: LanguageModel,
                      comm: Communicator, padId: Int32) -> [[Float]] {
        let shard = comm.shard
        let pass = CandidateScoringPass(scorer: scorer, model: model, padId: padId)
        let local = shard.indices(of: candidates.count).map { scoreOne(candidates[$0], in: pass) }
        let perRank = comm.allgather(ScoreRows(rows: local)).map(\.rows)
        return shard.interleave(perRank, count: candidates.count)
    }

    /// Candidates in fixed chunks of `chunk` consecutive ones, each chunk one right-padded
    /// forward, the chunks dealt over ranks and the scores gathered back in candidate order.
    /// The chunks do not depend on the rank count, so neither do the scores' bits; a chunk
    /// forwards many short sequences at once where one per forward is a poor GEMM (rloo's KL
    /// penalty over a generation's rollouts).
    static func scoreInChunks(_ candidates: [StepSequence], chunk: Int, with scorer: CandidateScorer, model: LanguageModel,
                              comm: Communicator, padId: Int32) -> [[Float]] {
        let k = max(1, chunk), chunks = (candidates.count + k - 1) / k
        let local = comm.shard.indices(of: chunks).map { c -> [Float] in
            let members = Array(candidates[(c * k)..<min((c + 1) * k, candidates.count)])
            // One row per chunk: each member's score, preceded by its length.
            return scoreChunk(members, with: scorer, model: model, padId: padId).flatMap { [Float($0.count)] + $0 }
        }
        let perRank = comm.allgather(ScoreRows(rows: local)).map(\.rows)
        return comm.shard.interleave(perRank, count: chunks).flatMap { row -> [[Float]] in
            var scores: [[Float]] = [], i = 0
            while i < row.count { let n = Int(row[i]); scores.append(Array(row[(i + 1)..<(i + 1 + n)])); i += 1 + n }
            return scores
        }
    }

    /// The scores of `members` from one forward of them, right-padded to the longest (causal
    /// attention: a position never reads the padding after it).
    static func scoreChunk(_ members: [StepSequence], with scorer: CandidateScorer, model: LanguageModel, padId: Int32) -> [[Float]] {
        let mb = Batching.padded(members, indices: Array(members.indices), padId: padId)
        let V = model.vocabSize, T = mb.seqLen
        let logits = model.forward(Tape(recording: false), inputs: mb.inputs, positions: mb.positions, segments: nil,
                                   batch: members.count, seqLen: T)
        return withExtendedLifetime(logits) {
            members.indices.map { j in
                let n = max(members[j].ids.count - 1, 0), rows = (j * T)..<(j * T + n)
                return scorer.score(CandidateView(rows: n, vocab: V, logits: UnsafePointer(logits.data) + j * T * V,
                                                  targets: mb.targets[rows], mask: mb.mask[rows]))
            }
        }
    }

    /// One candidate's forward-only score (also `sft-dist select`'s, over a whole dataset).
    /// A `HeadFactoredScorer` on a `HiddenStateModel` scores from the hidden states and the
    /// pass's head products; any other scorer gets the candidate's logits.
    static func scoreOne(_ candidate: StepSequence, in pass: CandidateScoringPass) -> [Float] {
        let scorer = pass.scorer, model = pass.model, padId = pass.padId
        let n = max(candidate.ids.count - 1, 0), V = model.vocabSize
        guard n > 0 else {
            return [Float(0)].withUnsafeBufferPointer {
                scorer.score(CandidateView(rows: 0, vocab: V, logits: $0.baseAddress!, targets: [], mask: []))
            }
        }
        let mb = Batching.padded([candidate], indices: [0], padId: padId)
        let noGrad = Tape(recording: false)
        let view = { (logits: UnsafePointer<Float>) in
            CandidateView(rows: n, vocab: V, logits: logits, targets: mb.targets[0..<n], mask: mb.mask[0..<n])
        }
        if let hs = model as? HiddenStateModel {
            let (hidden, head, layout) = hs.forwardHidden(noGrad, inputs: mb.inputs, positions: mb.positions, segments: nil,
                                                          batch: 1, seqLen: mb.seqLen)
            if let f = withExtendedLifetime((hidden, head), { pass.factoredScore(hidden: hidden, head: head, layout: layout, rows: n) }) {
                return f
            }
            var logits = [Float](repeating: 0, count: n * V)
            return logits.withUnsafeMutableBufferPointer { out in
                withExtendedLifetime((hidden, head)) {
                    LinearKernels.forward(out: out.baseAddress!, x: hidden.data, w: head.data, bias: nil, n: n,
                                          inFeatures: hidden.columns, outFeatures: V, layout: layout)
                }
                return scorer.score(view(UnsafePointer(out.baseAddress!)))
            }
        }
        let logits = model.forward(noGrad, inputs: mb.inputs, positions: mb.positions, segments: nil, batch: 1, seqLen: mb.seqLen)
        return withExtendedLifetime(logits) { scorer.score(view(UnsafePointer(logits.data))) }
    }
}

/// Per-candidate score vectors crossing ranks.
struct ScoreRows: WireCodable {
    var rows: [[Float]]
    init(rows: [[Float]]) { self.rows = rows }
    func write(to w: inout WireWriter) {
        w.put(Int64(rows.count))
        for r in rows { w.put(r) }
    }
    init(from r: inout WireReader) {
        rows = (0..<Int(r.get(Int64.self))).map { _ in r.getFloats() }
    }
}
