import TensorCore

/// [Σ m·log softmax(z/T)[y] as two floats, Σ m] over a candidate's loss tokens: its log-likelihood
/// at temperature T (rloo's KL penalty, `LeaveOneOutAdvantages.klSums`). Scores travel as Float;
/// a long answer's sum (−2,000 over 1,000 tokens has a float32 spacing of 1e-4) is sent as its
/// float32 value and the remainder, so the difference of two models' sums keeps Double's precision.
struct TargetLogProbScorer: CandidateScorer {
    let temperature: Float
    func score(_ c: CandidateView) -> [Float] {
        var sum = 0.0, n: Float = 0
        var row = [Float](repeating: 0, count: temperature == 1 ? 0 : c.vocab)
        for (t, (y, m)) in zip(c.targets, c.mask).enumerated() where m != 0 {
            let z = c.logits + t * c.vocab
            if temperature == 1 {
                sum += Double(m) * Double(z[Int(y)] - SoftmaxKernels.logSumExp(z, count: c.vocab))
            } else {
                for v in 0..<c.vocab { row[v] = z[v] / temperature }
                sum += Double(m) * Double(row[Int(y)] - SoftmaxKernels.logSumExp(row, count: c.vocab))
            }
            n += m
        }
        let high = Float(sum)
        return [high, Float(sum - Double(high)), n]
    }

    /// The Double sum from a score's two floats.
    static func sum(_ score: [Float]) -> Double { Double(score[0]) + Double(score[1]) }
}
