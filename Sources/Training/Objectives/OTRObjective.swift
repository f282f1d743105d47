import Foundation
import TensorCore

/// One-Token Rollout (OTR), "One-Token Rollout: Guiding Supervised Fine-Tuning of LLMs with
/// Policy Gradient", arXiv 2509.26313 (no public code is known; the
/// reward values, K and τ are not confirmed from code).
///
/// Each target position is a one-step episode. Draw a_{t,1..K} ~ softmax(sg(z_t)/τ); reward
/// R(a) = 1 if a = y_t, β ≤ 0 otherwise; REINFORCE without baseline or clipping:
///
///   L_t = −(c_t/K)·log π_θ(y_t) − (β/K)·Σ_{k: a_k ≠ y_t} log π_θ(a_k),   L = Σ_t M_t·L_t / N_global,
///   ∂L_t/∂z = S_t·softmax(z) − (c_t/K)·onehot(y_t) − (β/K)·Σ_{a_k ≠ y_t} onehot(a_k),  S_t = (c_t + β·W_t)/K,
///
/// c_t = max(#{k: a_k = y_t}, 1), W_t = #{k: a_k ≠ y_t}. c_t/K ≈ π_τ(y_t): a DFT-like weighted
/// CE plus a push-down on sampled wrong tokens. Open points, resolved here:
/// - The ground truth enters as the draws that hit it; if none does, it is *added* with one slot
///   (c_t = 1, all K wrong draws kept), so every demonstration token keeps a gradient and a
///   hard token is never dropped — the reconstruction's "ground-truth term always present".
/// - The log-prob is π_θ at temperature 1 (the model being trained); τ shapes only the
///   sampling, as a rollout policy would.
/// - Normalisation: 1/K per position, then the token mean over the global loss tokens.
/// - Sampling streams: one per (run seed, step, sequenceId, position in the sequence), from
///   `StepContext.seed`, not from (rank, micro-batch): a position draws the same
///   tokens however the batch is split, so `-n 1` and `-n 2` agree with the same seed. (A loss
///   row without a sequence id falls back to a stream keyed by its row index.)
/// Detached: the sampling distribution and so the draws (held fixed in the gradient).
/// Arguments: `k` (8, ≥ 1), `temperature` τ (1.0, > 0), `beta` (−0.1, ≤ 0: the push-down is
/// reported as crucial, so the default keeps a mild one). Diagnostics: hit rate (draws equal to
/// the ground truth), mean p, entropy.
public final class OTRObjective: Objective, DetachedEvaluable {
    public let name = "otr"
    public let requirements = ObjectiveRequirements()
    public let k: Int, temperature: Float, beta: Float

    public init(k: Int = 8, temperature: Float = 1, beta: Float = -0.1) throws {
        try checkArg(k >= 1, "otr", "k must be >= 1, got \(k)")
        try checkArg(temperature > 0, "otr", "temperature must be > 0, got \(temperature)")
        try checkArg(beta <= 0, "otr", "beta must be <= 0 (the reward of a wrong token), got \(beta)")
        self.k = k; self.temperature = temperature; self.beta = beta
    }

    /// The stream of one position; independent of rank, micro-batch and row offset.
    static func stream(seed: UInt64, step: Int, sequenceId: Int32, position: Int, row: Int) -> RNG {
        let stepSeed = RNG(seed: seed, stream: 0x4F54_5200 &+ UInt64(truncatingIfNeeded: step)).state.0
        let key: UInt64 = sequenceId >= 0
            ? UInt64(UInt32(bitPattern: sequenceId)) << 32 | UInt64(truncatingIfNeeded: position) & 0xFFFF_FFFF
            : 1 << 63 | UInt64(truncatingIfNeeded: row)
        return RNG(seed: stepSeed, stream: key)
    }

    /// K draws from softmax(z/τ) by inverse CDF over `cdf` (scratch of V Doubles).
    func draw(_ z: UnsafePointer<Float>, _ V: Int, rng: inout RNG, cdf: UnsafeMutablePointer<Double>) -> [Int] {
        var m = -Float.infinity
        for v in 0..<V { m = max(m, z[v]) }
        let invTau = 1 / temperature
        var acc: Double = 0
        for v in 0..<V { acc += Double(expf((z[v] - m) * invTau)); cdf[v] = acc }
        return (0..<k).map { _ in
            let u = rng.uniformDouble() * acc
            var lo = 0, hi = V - 1          // first v with cdf[v] > u
            while lo < hi { let mid = (lo + hi) / 2; if cdf[mid] > u { hi = mid } else { lo = mid + 1 } }
            return lo
        }
    }

    public func evaluate(_ input: ObjectiveInput, detached: UnsafePointer<Float>,
                         dlogits: UnsafeMutablePointer<Float>?) -> ObjectiveResult {
        let V = input.vocab, K = Float(k)
        let scale = inverseCount(input.context.globalLossTokens)
        let seq = SequenceIndex(input.sequenceId)
        let cdf = UnsafeMutablePointer<Double>.allocate(capacity: V)
        defer { cdf.deallocate() }
        var diag = TokenDiagnostics()
        var total = 0.0, hitsTotal = 0.0
        for r in 0..<input.rows where input.mask[r] != 0 {
            let y = lossTarget(input, r, name)
            var rng = Self.stream(seed: input.context.seed, step: input.context.step, sequenceId: input.sequenceId[r],
                                  position: seq.position[r], row: r)
            let samples = draw(detached + r * V, V, rng: &rng, cdf: cdf)
            let hits = samples.reduce(0) { $0 + ($1 == y ? 1 : 0) }
            let c = Float(max(hits, 1)), wrong = Float(samples.count - hits)
            let z = input.logits + r * V
            let lse = SoftmaxKernels.logSumExp(z, count: V)
            let m = input.mask[r], a = m * scale
            var l = -(c / K) * (z[y] - lse)
            for s in samples where s != y { l -= (beta / K) * (z[s] - lse) }
            total += Double(m * l)
            diag.entropy += LogitRow.addScaledSoftmax(dlogits.map { $0 + r * V }, z, lse: lse, V, scale: a * (c + beta * wrong) / K)
            if let d = dlogits {
                d[r * V + y] -= a * c / K
                for s in samples where s != y { d[r * V + s] -= a * beta / K }
            }
            hitsTotal += Double(hits) / Double(k)
            diag.sumP += Double(expf(z[y] - lse)); diag.count += 1
        }
        var d: [String: Double] = ["hit_rate": hitsTotal], cnt: [String: Double] = ["hit_rate": diag.count]
        diag.into(&d, &cnt)
        return ObjectiveResult(loss: total * Double(scale), diagnostics: d, diagnosticCounts: cnt)
    }
}
