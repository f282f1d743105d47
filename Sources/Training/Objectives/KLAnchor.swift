import Foundation
import TensorCore

/// A weighted NLL anchored to a frozen reference by a KL, the loss ASFT (weight sg(p)) and
/// SuperHF (weight 1) share:
///   L = Σ_t M_t·[ w_t·(−log p_y) + λ·KL(π_ref ‖ π_θ)_t ] / N_global,
///   KL_t = Σ_v q_v (log q_v − log p_v),   ∂L/∂z_v = M_t·[ (w_t + λ)·p_v − λ·q_v − w_t·[v = y] ] / N_global,
/// with w_t detached (the caller's `weight(row, target, log p_y)`) and q = softmax(reference
/// logits) frozen. Diagnostics: `kl_ref` (mean KL per loss token), mean p, entropy.
enum KLAnchor {
    static func evaluate(_ input: ObjectiveInput, objective name: String, lambda: Float, dlogits: UnsafeMutablePointer<Float>?,
                         weight: (_ row: Int, _ target: Int, _ logp: Float) -> Float) -> ObjectiveResult {
        let ref = requireReference(input, name)
        let V = input.vocab
        let scale = inverseCount(input.context.globalLossTokens)
        var diag = TokenDiagnostics()
        var total = 0.0, sumKL = 0.0
        for r in 0..<input.rows where input.mask[r] != 0 {
            let y = lossTarget(input, r, name)
            let z = input.logits + r * V, zr = ref + r * V
            let lse = SoftmaxKernels.logSumExp(z, count: V), lseRef = SoftmaxKernels.logSumExp(zr, count: V)
            let logp = z[y] - lse
            let w = weight(r, y, logp)
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
