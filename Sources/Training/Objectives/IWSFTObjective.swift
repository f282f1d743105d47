import Foundation
import TensorCore

/// Importance-weighted SFT (iw-SFT), "Supervised Fine Tuning on Curated Data is Reinforcement
/// Learning (and can be improved)", arXiv 2507.12856 (code:
/// `emmyqin/iw_sft` `bounding_trainers.py::IwSFTLoss` with `sum_over_time=True`).
///
///   w_b = sg(clip(exp(temp · (1/T_b)·Σ_{t∈b} (log p_θ(y_t) − log p_ref(y_t))), 0, w_max)),
///   L = Σ_b Σ_t M_t·w_b·(−log p_θ(y_t)) / N_global,   ∂L/∂z = M·w_b·(softmax − onehot(y)) / N_global.
///
/// T_b is sequence b's loss-token count. Each sequence lies inside one micro-batch (a padded
/// row or one packed segment), so w_b is computed from this micro-batch alone, grouping rows by
/// `sequenceId`. Detached: w_b, with log p_θ from the current model and log p_ref from the
/// frozen reference (`input.referenceLogits`: initial weights or `--ref-model`), never updated.
/// Normalisation: `num_items_in_batch` ("B") = global loss tokens of the step.
/// Arguments: `temp` (1.0, the value the official trainer passes; its signature default is 2.0;
/// > 0) and `w_max` (16, > 0). Diagnostics: mean weight per token, fraction of tokens whose
/// sequence weight hit w_max.
public final class IWSFTObjective: Objective, DetachedEvaluable {
    public let name = "iwsft"
    public let requirements = ObjectiveRequirements(referenceModel: true)
    public let temp: Float, wMax: Float

    public init(temp: Float = 1, wMax: Float = 16) throws {
        try checkArg(temp > 0, "iwsft", "temp must be > 0, got \(temp)")
        try checkArg(wMax > 0, "iwsft", "w_max must be > 0, got \(wMax)")
        self.temp = temp; self.wMax = wMax
    }

    /// w_b for every sequence slot of the micro-batch, from the detached logits.
    func sequenceWeights(_ input: ObjectiveInput, detached: UnsafePointer<Float>, _ seq: SequenceIndex) -> [Float] {
        let ref = requireReference(input, name)
        let V = input.vocab
        var sums = [Double](repeating: 0, count: seq.count), counts = [Double](repeating: 0, count: seq.count)
        for r in 0..<input.rows where input.mask[r] != 0 && seq.slot[r] >= 0 {
            let y = lossTarget(input, r, name)
            let z = detached + r * V, zr = ref + r * V
            let logp = z[y] - SoftmaxKernels.logSumExp(z, count: V), logpRef = zr[y] - SoftmaxKernels.logSumExp(zr, count: V)
            sums[seq.slot[r]] += Double(logp - logpRef)
            counts[seq.slot[r]] += 1
        }
        return (0..<seq.count).map { s in
            counts[s] > 0 ? min(max(Float(exp(Double(temp) * sums[s] / counts[s])), 0), wMax) : 0
        }
    }

    public func evaluate(_ input: ObjectiveInput, detached: UnsafePointer<Float>,
                         dlogits: UnsafeMutablePointer<Float>?) -> ObjectiveResult {
        let seq = SequenceIndex(input.sequenceId)
        let weights = sequenceWeights(input, detached: detached, seq)
        let scale = inverseCount(input.context.globalLossTokens), wMax = self.wMax
        var diag = TokenDiagnostics()
        var atMax = 0.0
        // A loss row without a sequence id cannot have a sequence weight; it is left out
        // (weight 0) rather than guessed.
        let (loss, sumW) = ObjectiveLosses.weightedNLL(input, detached: detached, dlogits: dlogits, scale: scale,
                                              objective: name, diag: &diag) { r, _ in
            let s = seq.slot[r]
            let w = s >= 0 ? weights[s] : 0
            if w >= wMax { atMax += 1 }
            return w
        }
        var d: [String: Double] = ["mean_weight": sumW, "clip_frac": atMax]
        var c: [String: Double] = ["mean_weight": diag.count, "clip_frac": diag.count]
        diag.into(&d, &c)
        return ObjectiveResult(loss: loss * Double(scale), diagnostics: d, diagnosticCounts: c)
    }
}
