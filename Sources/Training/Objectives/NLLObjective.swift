import Foundation
import TensorCore

/// Plain negative log-likelihood (the SFT baseline, TRL `SFTTrainer`), with optional label
/// smoothing (transformers `LabelSmoother`):
///   L = Σ_t M_t·[(1−ε)(−log p_y) + (ε/V)·Σ_v(−log p_v)] / N_global,
///   ∂L/∂z_v = M_t·(p_v − (1−ε)·[v = y] − ε/V) / N_global.
/// N_global is the number of loss tokens in the whole optimizer step on all ranks
/// (transformers' `num_items_in_batch`), so the result does not depend on rank count
/// or micro-batching. Row-local, so the trainer fuses it with the LM head over row chunks.
public final class NLLObjective: Objective {
    public let name = "nll"
    public let requirements: ObjectiveRequirements = {
        var r = ObjectiveRequirements(rowLocal: true)
        r.writesWholeRows = true   // every row's dlogits written below, masked rows as zeros
        return r
    }()
    public let labelSmoothing: Float

    public init(labelSmoothing: Float = 0) throws {
        guard labelSmoothing >= 0 && labelSmoothing < 1 else {
            throw ObjectiveError("objective nll: label_smoothing must be in [0, 1), got \(labelSmoothing)")
        }
        self.labelSmoothing = labelSmoothing
    }

    public func lossAndGradient(_ input: ObjectiveInput, dlogits: UnsafeMutablePointer<Float>) -> ObjectiveResult {
        let V = input.vocab, eps = labelSmoothing
        let scale = 1 / Float(max(input.context.globalLossTokens, 1))
        var total = 0.0, sumP = 0.0, correct = 0.0, count = 0.0, entropy = 0.0
        // exp(z_v − max z) once per logit, kept for the gradient: p_v = e_v / Σe.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: V) { buffer in
            let e = buffer.baseAddress!
            for r in 0..<input.rows {
                guard input.mask[r] != 0 else { (dlogits + r * V).update(repeating: 0, count: V); continue }
                let y = Int(input.targets[r])
                let z = input.logits + r * V
                let (m, sum) = SoftmaxKernels.expSum(z, into: e, count: V)
                // log p_v = z_v − lse; Σ_v(−log p_v)/V = lse − mean(z).
                let lse = m + Float(log(sum))
                let meanNeg = eps > 0 ? lse - Vec.total(z, count: V) / Float(V) : 0
                let l = (1 - eps) * (lse - z[y]) + eps * meanNeg
                total += Double(l * input.mask[r])
                let w = input.mask[r] * scale, inverse = Float(1 / sum)
                let d = dlogits + r * V
                let pw = F8(repeating: inverse * w), ew = F8(repeating: eps / Float(V) * w), mv = F8(repeating: m)
                // Σ e_v·(z_v − max z) on the way, for the entropy H = log Σe − Σ e_v·(z_v − max z) / Σe
                // (TRL's SFTTrainer logs it): z is still in cache, one multiply-add per logit.
                var ez = F8(repeating: 0), ezTail: Float = 0
                var v = 0
                // Written, not added to: 0 + x would be x (bar the sign of a zero).
                while v + 8 <= V {
                    let ev = Vec.load(e + v)
                    Vec.store(ev * pw - ew, d + v)
                    ez += ev * (Vec.load(z + v) - mv)
                    v += 8
                }
                while v < V { d[v] = e[v] * inverse * w - eps / Float(V) * w; ezTail += e[v] * (z[v] - m); v += 1 }
                d[y] -= (1 - eps) * w
                sumP += Double(e[y]) / sum; count += 1
                entropy += log(Double(sum)) - Double(ez.sum() + ezTail) / Double(sum)
                // First maximal logit, as argmax of log p.
                let argmax = Vec.firstIndex(of: m, in: z, count: V) ?? V - 1
                if argmax == y { correct += 1 }
            }
        }
        return ObjectiveResult(loss: total * Double(scale),
                               diagnostics: ["mean_p": sumP, "mean_token_accuracy": correct, "entropy": entropy],
                               diagnosticCounts: ["mean_p": count, "mean_token_accuracy": count, "entropy": count])
    }
}
