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
/// nuclear norm, entropy, a sketch: issue 13's selectors).
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
    /// Candidates dealt over ranks (`RankShard`), scored `microBatchSize` at a time in padded
    /// micro-batches without a tape, gathered back into candidate order.
    static func score(_ candidates: [StepSequence], with scorer: CandidateScorer, model: LanguageModel,
                      comm: Communicator, padId: Int32, microBatchSize: Int) -> [[Float]] {
        let shard = comm.shard
        let mine = shard.indices(of: candidates.count)
        var local: [[Float]] = []
        let noGrad = Tape(recording: false)
        for start in stride(from: 0, to: mine.count, by: microBatchSize) {
            let part = Array(mine[start..<min(start + microBatchSize, mine.count)])
            let mb = Batching.padded(candidates, indices: part, padId: padId)
            let logits = model.forward(noGrad, inputs: mb.inputs, positions: mb.positions, segments: nil,
                                       batch: mb.batch, seqLen: mb.seqLen)
            withExtendedLifetime(logits) {
                for (row, index) in part.enumerated() {
                    let n = max(candidates[index].ids.count - 1, 0), base = row * mb.seqLen
                    local.append(scorer.score(CandidateView(rows: n, vocab: logits.columns, logits: logits.data + base * logits.columns,
                                                            targets: mb.targets[base..<(base + n)], mask: mb.mask[base..<(base + n)])))
                }
            }
        }
        let perRank = comm.allgather(ScoreRows(rows: local)).map(\.rows)
        return shard.interleave(perRank, count: candidates.count)
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
