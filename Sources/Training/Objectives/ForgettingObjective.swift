import Foundation
import TensorCore

/// Forgetting, "Forgetting: A New Mechanism Towards Better Large Language Model Fine-tuning",
/// arXiv 2508.04329 (code: `source_codes/token_partitioning.py`,
/// `source_codes/finetune.py` of the authors' repository).
///
///   Tokens ranked globally by ℓ_base − ℓ_ref; top `ratio` → P (learn), the rest → N (forget):
///   L = Σ_{t∈P} M_t ℓ_t / |P| − λ(s) · Σ_{t∈N} M_t·g_t·ℓ_t / |N|,   g_t = 1[sg(p_t) > p_floor],
///   λ(s) = (λ_max − λ_min) · s / S   (the code's `(t_max − t_min)·(step // grad_acc)/max_train_steps`).
///
/// Scoring and selection are token-clean's (see `TokenCleanObjective`): `scores=fixed` (the
/// default, the paper's: once before training, the initial weights against the frozen
/// `--ref-model`, over the training set) or `scores=online` (every step, the current model's
/// detached token loss against the reference, over the step). |P| and |N| are the global
/// counts over the step batch (the code normalises per micro-batch). s is the 0-based optimizer step and S the total steps of the
/// run; the code's counter restarts each epoch, which only matters for multi-epoch runs.
///
/// The bound: the paper's ascent term is unbounded below — pushing p → 0 on N tokens lowers
/// the loss for ever. Here ascent on a token stops once its probability is at or below
/// `p_floor` (g_t = 0, a stop-gradient gate like PPO's clip), so each N token contributes at
/// least −λ·(−log p_floor)/|N| and the total at least −λ·log(1/p_floor): it cannot run away.
/// Detached: scores, selection, the gate. Arguments: `ratio` (0.7, in (0, 1]), `lambda_max`
/// (0.25 = t_max) and `lambda_min` (1e-5 = t_min; 0 ≤ lambda_min ≤ lambda_max), `p_floor`
/// (0.01, in (0, 1)), `scores` (fixed | online). Diagnostics: kept ratio, λ, fraction of N tokens still ascending,
/// mean loss on P and on N.
public final class ForgettingObjective: Objective, DetachedEvaluable, ExcessLossSelecting {
    public let name = "forgetting"
    public let requirements: ObjectiveRequirements
    public let ratio: Double, lambdaMax: Float, lambdaMin: Float, pFloor: Float
    public let scores: TokenScores
    let selection = StepCache<ExcessLossSelection>()

    public init(ratio: Double = 0.7, lambdaMax: Float = 0.25, lambdaMin: Float = 1e-5, pFloor: Float = 0.01,
                scores: TokenScores = .fixed) throws {
        try checkArg(ratio > 0 && ratio <= 1, "forgetting", "ratio must be in (0, 1], got \(ratio)")
        try checkArg(lambdaMin >= 0, "forgetting", "lambda_min must be >= 0, got \(lambdaMin)")
        try checkArg(lambdaMax >= lambdaMin, "forgetting", "lambda_max must be >= lambda_min (\(lambdaMin)), got \(lambdaMax)")
        try checkArg(pFloor > 0 && pFloor < 1, "forgetting", "p_floor must be in (0, 1), got \(pFloor)")
        self.ratio = ratio; self.lambdaMax = lambdaMax; self.lambdaMin = lambdaMin; self.pFloor = pFloor
        self.scores = scores
        requirements = scores.requirements
    }

    /// λ(s), linear from 0 at the first step.
    func lambda(_ context: StepContext) -> Float {
        (lambdaMax - lambdaMin) * Float(context.step) / Float(max(context.totalSteps, 1))
    }

    public func evaluate(_ input: ObjectiveInput, detached: UnsafePointer<Float>,
                         dlogits: UnsafeMutablePointer<Float>?) -> ObjectiveResult {
        let keeps = tokenSelection(input)
        let lam = lambda(input.context), logFloor = logf(pFloor)
        let wPos = inverseCount(keeps.counts.kept), wNeg = -lam * inverseCount(keeps.counts.total - keeps.counts.kept)
        var diag = TokenDiagnostics()
        var nPos = 0.0, nNeg = 0.0, ascending = 0.0, lossPos = 0.0, lossNeg = 0.0
        // Per-row weights already carry their own normaliser, so the shared scale is 1.
        let (loss, _) = ObjectiveLosses.weightedNLL(input, detached: detached, dlogits: dlogits, scale: 1,
                                           objective: name, diag: &diag) { r, logp in
            if keeps.keeps(r, logp) {
                nPos += 1; lossPos -= Double(logp)
                return wPos
            }
            nNeg += 1; lossNeg -= Double(logp)
            guard logp > logFloor else { return 0 }
            ascending += 1
            return wNeg
        }
        var d: [String: Double] = ["kept_ratio": nPos, "lambda": Double(lam) * diag.count,
                                   "ascent_frac": ascending, "loss_pos": lossPos, "loss_neg": lossNeg]
        var c: [String: Double] = ["kept_ratio": diag.count, "lambda": diag.count,
                                   "ascent_frac": nNeg, "loss_pos": nPos, "loss_neg": nNeg]
        diag.into(&d, &c)
        return ObjectiveResult(loss: loss, diagnostics: d, diagnosticCounts: c)
    }
}
