import Foundation
import TensorCore

/// Plain negative log-likelihood (the SFT baseline, TRL `SFTTrainer`), with optional label
/// smoothing (transformers `LabelSmoother`):
///   L = Σ_t M_t·[(1−ε)(−log p_y) + (ε/V)·Σ_v(−log p_v)] / N_global,
///   ∂L/∂z_v = M_t·(p_v − (1−ε)·[v = y] − ε/V) / N_global.
/// N_global is the number of loss tokens in the whole optimizer step on all ranks
/// (normalisation "B" of objectives.md §1), so the result does not depend on rank count
/// or micro-batching.
public final class NLLObjective: Objective {
    public let name = "nll"
    public let requirements = ObjectiveRequirements()
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
        var lp = [Float](repeating: 0, count: V)
        lp.withUnsafeMutableBufferPointer { lp in
            for r in 0..<input.rows where input.mask[r] != 0 {
                let y = Int(input.targets[r])
                SoftmaxKernels.logSoftmax(out: lp.baseAddress!, logits: input.logits + r * V, rows: 1, vocab: V)
                var meanNeg: Float = 0
                if eps > 0 { for v in 0..<V { meanNeg -= lp[v] } ; meanNeg /= Float(V) }
                let l = (1 - eps) * -lp[y] + eps * meanNeg
                total += Double(l * input.mask[r])
                let w = input.mask[r] * scale
                let d = dlogits + r * V
                var argmax = 0
                for v in 0..<V {
                    d[v] += (expf(lp[v]) - eps / Float(V)) * w
                    if lp[v] > lp[argmax] { argmax = v }
                }
                d[y] -= (1 - eps) * w
                sumP += Double(expf(lp[y])); count += 1
                if argmax == y { correct += 1 }
            }
        }
        return ObjectiveResult(loss: total * Double(scale),
                               diagnostics: ["mean_p": sumP, "token_acc": correct],
                               diagnosticCounts: ["mean_p": count, "token_acc": count])
    }
}
