import Foundation
import TensorCore

/// Plain negative log-likelihood (the SFT baseline, TRL `SFTTrainer`), with optional label
/// smoothing (transformers `LabelSmoother`):
///   L = Σ_t M_t·[(1−ε)(−log p_y) + (ε/V)·Σ_v(−log p_v)] / N_global,
///   ∂L/∂z_v = M_t·(p_v − (1−ε)·[v = y] − ε/V) / N_global.
/// N_global is the number of loss tokens in the whole optimizer step on all ranks
/// (normalisation "B" of objectives.md §1), so the result does not depend on rank count
/// or micro-batching. Row-local, so the trainer fuses it with the LM head over row chunks.
public final class NLLObjective: Objective {
    public let name = "nll"
    public let requirements = ObjectiveRequirements(rowLocal: true)
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
        var total = 0.0, sumP = 0.0, correct = 0.0, count = 0.0
        for r in 0..<input.rows where input.mask[r] != 0 {
            let y = Int(input.targets[r])
            let z = input.logits + r * V
            // log p_v = z_v − lse; Σ_v(−log p_v)/V = lse − mean(z).
            let lse = SoftmaxKernels.logSumExp(z, count: V)
            let meanNeg = eps > 0 ? lse - Vec.total(z, count: V) / Float(V) : 0
            let l = (1 - eps) * (lse - z[y]) + eps * meanNeg
            total += Double(l * input.mask[r])
            let w = input.mask[r] * scale
            let d = dlogits + r * V
            let lv = F8(repeating: lse), wv = F8(repeating: w), ev = F8(repeating: eps / Float(V))
            var v = 0
            while v + 8 <= V { Vec.store(Vec.load(d + v) + (Vec.exp(Vec.load(z + v) - lv) - ev) * wv, d + v); v += 8 }
            while v < V { d[v] += (expf(z[v] - lse) - eps / Float(V)) * w; v += 1 }
            d[y] -= (1 - eps) * w
            sumP += Double(expf(z[y] - lse)); count += 1
            // First maximal logit, as argmax of log p.
            let m = Vec.maximum(z, count: V)
            var argmax = 0
            while argmax < V - 1 && z[argmax] != m { argmax += 1 }
            if argmax == y { correct += 1 }
        }
        return ObjectiveResult(loss: total * Double(scale),
                               diagnostics: ["mean_p": sumP, "token_acc": correct],
                               diagnosticCounts: ["mean_p": count, "token_acc": count])
    }
}
