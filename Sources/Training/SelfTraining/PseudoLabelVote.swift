import Foundation

/// SemiEvol's selection of confident pseudo-labels (arXiv 2410.14745, §3.3; public code
/// `pipeline.py`: `resolve_inconsistencies`, `calculate_entropy`), as pure functions of the
/// sampled answers so tests can check them on fixed samples.
///
/// Each prompt has k sampled answers. The prompt's answer is the majority vote over their
/// answer keys (the scorer's normal form, `SelfTrainScoring.answerKey`); a tie goes to the key
/// sampled first. A prompt whose k answers all agree is *consistent* and always kept. An
/// inconsistent prompt is kept when its entropy — the negative mean token log-probability of
/// the representative answer (the first sample carrying the voted key), as the public code
/// defines it — is below the `percentile`-th percentile of the entropies of all inconsistent
/// prompts of the round (every rank's prompts: the round's samples are gathered first). The
/// public code asks the model to reflect on an inconsistent prompt first; here the vote
/// replaces that step.
public enum PseudoLabelVote {
    public struct Decision: Equatable, Sendable {
        /// The voted answer key; nil when no sample finished (none can vote).
        public var key: String?
        public var votes: Int
        /// Index of the representative sample among the prompt's k.
        public var representative: Int
        public var consistent: Bool
        public var entropy: Double
        public var selected: Bool
    }

    /// The majority key of `keys` (nil = a sample that cannot vote), its votes and the first
    /// sample carrying it; ties go to the key that appears first.
    public static func vote(_ keys: [String?]) -> (key: String, votes: Int, first: Int)? {
        var count: [String: Int] = [:], first: [String: Int] = [:]
        for (i, k) in keys.enumerated() {
            guard let k else { continue }
            count[k, default: 0] += 1
            if first[k] == nil { first[k] = i }
        }
        guard let best = count.max(by: { a, b in a.value != b.value ? a.value < b.value : first[a.key]! > first[b.key]! }) else {
            return nil
        }
        return (best.key, best.value, first[best.key]!)
    }

    /// −(1/n) Σ log p over a sample's tokens (SemiEvol's `calculate_entropy`).
    public static func entropy(_ logProbs: [Float]) -> Double {
        guard !logProbs.isEmpty else { return .infinity }
        return -logProbs.reduce(0.0) { $0 + Double($1) } / Double(logProbs.count)
    }

    /// The q-th percentile (0…100) with linear interpolation between order statistics
    /// (numpy's default); nil for no values.
    public static func percentile(_ values: [Double], _ q: Double) -> Double? {
        guard !values.isEmpty else { return nil }
        let s = values.sorted()
        let pos = q / 100 * Double(s.count - 1)
        let lo = Int(pos.rounded(.down)), hi = min(lo + 1, s.count - 1)
        return s[lo] + (s[hi] - s[lo]) * (pos - Double(lo))
    }

    /// One decision per prompt. `keys[p][j]` is sample j's answer key (nil: it did not finish),
    /// `logProbs[p][j]` its token log-probabilities.
    public static func decide(keys: [[String?]], logProbs: [[[Float]]], percentile q: Double) -> [Decision] {
        var decisions: [Decision] = zip(keys, logProbs).map { k, lp in
            guard let v = vote(k) else {
                return Decision(key: nil, votes: 0, representative: -1, consistent: false, entropy: .infinity, selected: false)
            }
            let consistent = v.votes == k.count
            return Decision(key: v.key, votes: v.votes, representative: v.first, consistent: consistent,
                            entropy: entropy(lp[v.first]), selected: consistent)
        }
        let inconsistent = decisions.indices.filter { decisions[$0].key != nil && !decisions[$0].consistent }
        if let threshold = percentile(inconsistent.map { decisions[$0].entropy }, q) {
            for i in inconsistent where decisions[i].entropy < threshold { decisions[i].selected = true }
        }
        return decisions
    }
}
