import Foundation
import TensorCore

/// Anchored SFT (ASFT), arXiv 2509.23753
/// (code: `zhuchichi56/ASFT` `train_v2.py::EnhancedTrainer.compute_loss`,
/// mode `asft`; LLaMA-Factory `asft_loss_func`). DFT anchored to a frozen reference by a KL:
///
///   L = Σ_t M_t·[ sg(p_t)·(−log p_t) + λ·KL(π_ref ‖ π_θ)_t ] / N_global,
///   KL_t = Σ_v q_v (log q_v − log p_v)   (`F.kl_div(log_softmax(θ), softmax(ref)).sum(-1)`),
///   ∂L/∂z = M·[ sg(p)(softmax − onehot(y)) + λ(p_θ − q) ] / N_global.
///
/// Detached: the DFT weight p_t and the whole reference distribution q (frozen: the initial
/// weights or `--ref-model`, `input.referenceLogits`). Normalisation: global loss tokens (the
/// official trainer's micro-batch mean "A" made split-invariant). Argument: `kl_weight` λ
/// (default 0.1, the official default; the README example uses 0.05; must be ≥ 0).
/// Diagnostics: mean KL per loss token besides mean p and entropy.
public final class AnchoredSFTObjective: Objective, DetachedEvaluable {
    public let name = "asft"
    public let requirements = ObjectiveRequirements(referenceModel: true)
    public let klWeight: Float

    public init(klWeight: Float = 0.1) throws {
        try checkArg(klWeight >= 0, "asft", "kl_weight must be >= 0, got \(klWeight)")
        self.klWeight = klWeight
    }

    public func evaluate(_ input: ObjectiveInput, detached: UnsafePointer<Float>,
                         dlogits: UnsafeMutablePointer<Float>?) -> ObjectiveResult {
        let ref = requireReference(input, name)
        let V = input.vocab, lambda = klWeight
        let scale = inverseCount(input.context.globalLossTokens)
        var diag = TokenDiagnostics()
        var total = 0.0, sumKL = 0.0
        for r in 0..<input.rows where input.mask[r] != 0 {
            let y = lossTarget(input, r, name)
            let z = input.logits + r * V, zr = ref + r * V
            let lse = SoftmaxKernels.logSumExp(z, count: V), lseRef = SoftmaxKernels.logSumExp(zr, count: V)
            let logp = z[y] - lse
            let w = expf(LogitRow.detachedLogProb(detached, input.logits, row: r, V, target: y, liveLogP: logp))
            let m = input.mask[r], a = m * scale
            // One pass: KL, entropy and the gradient a·[(w + λ)p_v − λq_v] (the −w·onehot below).
            var kl: Double = 0, h: Double = 0
            for v in 0..<V {
                let lp = z[v] - lse, lq = zr[v] - lseRef
                let p = expf(lp), qv = expf(lq)
                kl += Double(qv * (lq - lp))
                h -= Double(p * lp)
                dlogits?[r * V + v] += a * ((w + lambda) * p - lambda * qv)
            }
            dlogits?[r * V + y] -= a * w
            total += Double(m) * (Double(w * -logp) + Double(lambda) * kl)
            sumKL += kl
            diag.sumP += Double(expf(logp)); diag.entropy += h; diag.count += 1
        }
        var d: [String: Double] = ["kl_ref": sumKL], c: [String: Double] = ["kl_ref": diag.count]
        diag.into(&d, &c)
        return ObjectiveResult(loss: total * Double(scale), diagnostics: d, diagnosticCounts: c)
    }
}
