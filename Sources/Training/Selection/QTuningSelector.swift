import Foundation
import TensorCore

/// `--selection q-tuning`: Q-Tuning (arXiv 2509.23873 §3, Algorithm 1; thresholds and
/// quadrants as the public `QTuningPruner` reimplementation). Per candidate, over its loss
/// tokens: token PPL_t = exp(ℓ_t) with ℓ_t = −log p(target), entropy H_t; sample PPL =
/// exp(mean ℓ), Ent = mean H.
///
/// Sample budget: bisection (`iterations`, 10) on α = β ∈ [0, 0.49]; thresholds are numpy's
/// linear quantiles Q_α, Q_{1−α} of PPL and Q_β, Q_{1−β} of Ent; a value ≥ the upper one is
/// high, < the lower one low, else mid. (PPL, Ent): (high, high) Q1 drop; (high, low|mid) Q2
/// keep and prune tokens; (low, low|mid), (mid, low) Q3 drop; (low|mid, high), (mid, mid) Q4
/// keep whole. At α = 0 every sample is (mid, mid) and kept; raising α moves samples out of
/// the middle band, so α moves up while |Q2 ∪ Q4| / |pool| > `budget` (r_sample) and down
/// otherwise; the last iterate's thresholds decide. (The reimplementation moves the other
/// way, which drives α to 0 and keeps the whole pool.)
///
/// The budget is a hard cap (not in the paper or the reimplementation; it makes runs
/// equal-compute): α = β cannot always bring |Q2 ∪ Q4| down to it — when PPL and entropy are
/// anti-correlated nearly every sample lies in Q2 or Q4 at any α — so when more than
/// `keep` = budget × pool remain, the `keep` deepest inside their quadrant train: Q2 by
/// rank(PPL) − rank(Ent), Q4 by rank(Ent) − rank(PPL), with rank(x) the share of the pool
/// below x (`deepest`; ties to the lower index).
///
/// Token budget (Q2 only): s_t = (1 − λ)·PPL_t + λ·(PPL_{t−1} + PPL_{t+1})/2 over the loss
/// tokens in order (a missing neighbour counts as PPL_t), λ = `lambda` (0.5); the
/// max(1, ⌊`token_budget` · m⌋) lowest scores keep their loss, the rest are masked out
/// (the tokens stay as context). Features: `TokenStatisticsScorer`.
public final class QTuningSelector: CandidateSelector {
    public let name = "q-tuning"
    public let sampleBudget: Double, tokenBudget: Double, lambda: Double, iterations: Int
    public let scorer: CandidateScorer? = TokenStatisticsScorer()

    public init(sampleBudget: Double, tokenBudget: Double, lambda: Double, iterations: Int) {
        self.sampleBudget = sampleBudget; self.tokenBudget = tokenBudget; self.lambda = lambda; self.iterations = iterations
    }

    public enum Quadrant: Int { case q1 = 1, q2, q3, q4 }

    /// numpy.quantile(values, q) with linear interpolation.
    public static func quantile(_ values: [Double], _ q: Double) -> Double {
        let s = values.sorted()
        guard !s.isEmpty else { return 0 }
        let h = Double(s.count - 1) * q, lo = Int(h.rounded(.down)), hi = min(lo + 1, s.count - 1)
        return s[lo] + (h - Double(lo)) * (s[hi] - s[lo])
    }

    public struct Thresholds: Equatable { public var pplLow, pplHigh, entLow, entHigh, alpha: Double }

    public static func quadrant(ppl: Double, ent: Double, _ t: Thresholds) -> Quadrant {
        let p = ppl >= t.pplHigh ? 1 : (ppl < t.pplLow ? -1 : 0)
        let e = ent >= t.entHigh ? 1 : (ent < t.entLow ? -1 : 0)
        switch (p, e) {
        case (1, 1): return .q1
        case (1, _): return .q2
        case (-1, 1), (0, 1), (0, 0): return .q4
        default: return .q3
        }
    }

    /// The bisection for the sample budget (α = β).
    public static func thresholds(ppl: [Double], ent: [Double], budget: Double, iterations: Int) -> Thresholds {
        var lo = 0.0, hi = 0.49
        var t = Thresholds(pplLow: 0, pplHigh: 0, entLow: 0, entHigh: 0, alpha: 0)
        for _ in 0..<iterations {
            let a = (lo + hi) / 2
            t = Thresholds(pplLow: quantile(ppl, a), pplHigh: quantile(ppl, 1 - a), entLow: quantile(ent, a),
                           entHigh: quantile(ent, 1 - a), alpha: a)
            let kept = zip(ppl, ent).filter { [.q2, .q4].contains(quadrant(ppl: $0, ent: $1, t)) }.count
            if Double(kept) / Double(max(ppl.count, 1)) > budget { lo = a } else { hi = a }
        }
        return t
    }

    /// Indices (into the loss tokens) that keep their loss, ascending.
    public static func keptTokens(ppl: [Double], lambda: Double, budget: Double) -> [Int] {
        let m = ppl.count
        guard m > 0 else { return [] }
        let s = (0..<m).map { i -> Double in
            let prev = i > 0 ? ppl[i - 1] : ppl[i], next = i < m - 1 ? ppl[i + 1] : ppl[i]
            return (1 - lambda) * ppl[i] + lambda * (prev + next) / 2
        }
        let k = max(1, Int((budget * Double(m)).rounded(.down)))
        return SelectionRanking.top(s, k: k, largest: false)
    }

    public func describe(_ pool: SelectionPool) -> [(String, [Double])] {
        let stats = pool.features.map(TokenStatisticsScorer.Statistics.init)
        return [("ppl", stats.map(\.samplePPL)), ("entropy", stats.map(\.meanEntropy))]
    }

    public func select(_ pool: SelectionPool) -> SelectionDecision {
        let stats = pool.features.map(TokenStatisticsScorer.Statistics.init)
        let ppl = stats.map(\.samplePPL), ent = stats.map(\.meanEntropy)
        let t = Self.thresholds(ppl: ppl, ent: ent, budget: sampleBudget, iterations: iterations)
        let quadrants = zip(ppl, ent).map { Self.quadrant(ppl: $0, ent: $1, t) }
        var selected = quadrants.indices.filter { [.q2, .q4].contains(quadrants[$0]) }
        // A degenerate pool (every sample dropped): the most uncertain one, Q4's trait, trains.
        if selected.isEmpty { selected = SelectionRanking.top(ent, k: 1) }
        let triaged = selected.count
        if selected.count > pool.keep {
            selected = Self.deepest(selected, quadrants: quadrants, ppl: ppl, ent: ent, keep: pool.keep)
        }
        var masks: [[UInt8]] = [], q2Tokens = 0, q2Kept = 0
        for i in selected {
            guard quadrants[i] == .q2 else { masks.append([]); continue }
            let kept = Set(Self.keptTokens(ppl: stats[i].tokenNLL.map { exp($0) }, lambda: lambda, budget: tokenBudget))
            var mask = pool.candidates[i].lossMask, k = 0
            for p in mask.indices.dropFirst() where mask[p] != 0 {
                if !kept.contains(k) { mask[p] = 0 }
                k += 1
            }
            q2Tokens += k; q2Kept += kept.count
            masks.append(mask)
        }
        let count = { (q: Quadrant) in Double(quadrants.filter { $0 == q }.count) }
        return SelectionDecision(selected: selected, lossMasks: masks, statistics: [
            ("qtuning_q1", count(.q1)), ("qtuning_q2", count(.q2)), ("qtuning_q3", count(.q3)), ("qtuning_q4", count(.q4)),
            ("qtuning_alpha", t.alpha), ("qtuning_q2_tokens_kept", q2Tokens > 0 ? Double(q2Kept) / Double(q2Tokens) : 1),
            ("qtuning_over_budget", Double(triaged - selected.count))])
    }

    /// The budget cap: of `candidates` (pool indices in Q2 or Q4), the `keep` deepest inside
    /// their quadrant, ascending.
    public static func deepest(_ candidates: [Int], quadrants: [Quadrant], ppl: [Double], ent: [Double], keep: Int) -> [Int] {
        // rank(x) by binary search in the sorted values: a scan of the pool per candidate made
        // `select` over 80k rows spend 86 s in this cap alone (quadratic in the pool).
        let rankPPL = Self.ranks(ppl), rankEnt = Self.ranks(ent)
        let depth = candidates.map { i in
            quadrants[i] == .q2 ? rankPPL(i) - rankEnt(i) : rankEnt(i) - rankPPL(i)
        }
        return SelectionRanking.top(depth, k: keep).map { candidates[$0] }.sorted()
    }

    /// rank(i) = the share of `v` below v[i] (a NaN is below nothing and has nothing below it),
    /// from one sort of the values that are not NaN.
    static func ranks(_ v: [Double]) -> (Int) -> Double {
        let sorted = v.filter { !$0.isNaN }.sorted(), n = Double(v.count)
        return { i in
            let x = v[i]
            guard !x.isNaN else { return 0 }
            var lo = 0, hi = sorted.count   // the first index whose value is not below x
            while lo < hi { let mid = (lo + hi) / 2; if sorted[mid] < x { lo = mid + 1 } else { hi = mid } }
            return Double(lo) / n
        }
    }
}

/// [m, ℓ_1…ℓ_m, H_1…H_m] over a candidate's m loss tokens: −log p(target) and the entropy of
/// the next-token distribution, each from one log-sum-exp pass over the row.
public struct TokenStatisticsScorer: CandidateScorer {
    public init() {}
    public func score(_ c: CandidateView) -> [Float] {
        var nll: [Float] = [], ent: [Float] = []
        for (t, (y, m)) in zip(c.targets, c.mask).enumerated() where m != 0 {
            let z = c.logits + t * c.vocab
            let lse = Double(SoftmaxKernels.logSumExp(z, count: c.vocab))
            var pz = 0.0
            for v in 0..<c.vocab { pz += exp(Double(z[v]) - lse) * Double(z[v]) }
            nll.append(Float(lse - Double(z[Int(y)])))
            ent.append(Float(lse - pz))
        }
        return [Float(nll.count)] + nll + ent
    }

    public struct Statistics {
        public var tokenNLL: [Double], tokenEntropy: [Double]
        public init(_ f: [Float]) {
            let m = f.isEmpty ? 0 : Int(f[0])
            tokenNLL = f.dropFirst().prefix(m).map(Double.init)
            tokenEntropy = f.dropFirst(1 + m).prefix(m).map(Double.init)
        }
        /// exp(mean ℓ) (1 without loss tokens), and mean H.
        public var samplePPL: Double { tokenNLL.isEmpty ? 1 : exp(tokenNLL.reduce(0, +) / Double(tokenNLL.count)) }
        public var meanEntropy: Double { tokenEntropy.isEmpty ? 0 : tokenEntropy.reduce(0, +) / Double(tokenEntropy.count) }
    }
}
