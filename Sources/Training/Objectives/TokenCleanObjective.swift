import Foundation
import TensorCore

/// Token Cleaning, "Token Cleaning: Fine-Grained Data Selection for LLM Supervised Fine-Tuning",
/// arXiv 2502.01968 (code: `UCSC-REAL/TokenCleaning`
/// `generate_token_label.py` (`get_global_top_k_indices`, `loss_diff`), `finetune.py`).
///
///   score_t = ℓ_base,t − ℓ_ref,t,   keep the top `ratio` of the loss tokens by score,
///   L = Σ_{t kept} M_t·(−log p_t) / |kept|_global,   ∂L/∂z = M·(softmax − onehot(y)) / |kept| on kept tokens.
///
/// `scores=fixed` (the default, the paper's): scored once, before training, ℓ_base by the
/// initial weights and ℓ_ref by the frozen `--ref-model` (the paper's: the base LoRA-tuned on a
/// small high-quality subset), the top `ratio` of every loss token of the training set kept
/// (`select_token_level=global`; `Trainer.tokenLabels`); each row carries its labels
/// (`input.tokenWeights`), |kept| counts them over the step batch. `scores=online`: every step,
/// ℓ_base is the current model's detached token loss and selection is global over the step's
/// batch on all ranks (the statistics pass gathers every loss token's score, `beginStep` finds
/// the threshold) — the excess-loss rule kept current as the model learns, in the spirit of
/// the paper's self-evolving variant; without `--ref-model` its reference is the initial
/// weights and all scores start at 0. Either way the threshold is the ⌈ratio·n⌉-th largest
/// score, ties at it kept. Detached: scores and selection. Normalisation: HF `outputs.loss` =
/// mean over kept tokens, here the global kept count. Arguments: `ratio` (0.6 = `data_prop`,
/// in (0, 1]), `scores` (fixed | online). Diagnostics: kept ratio.
public final class TokenCleanObjective: Objective, DetachedEvaluable, ExcessLossSelecting {
    public let name = "token-clean"
    public let requirements: ObjectiveRequirements
    public let ratio: Double
    public let scores: TokenScores
    let selection = StepCache<ExcessLossSelection>()

    public init(ratio: Double = 0.6, scores: TokenScores = .fixed) throws {
        try checkArg(ratio > 0 && ratio <= 1, "token-clean", "ratio must be in (0, 1], got \(ratio)")
        self.ratio = ratio; self.scores = scores
        requirements = scores.requirements
    }

    public func evaluate(_ input: ObjectiveInput, detached: UnsafePointer<Float>,
                         dlogits: UnsafeMutablePointer<Float>?) -> ObjectiveResult {
        let keeps = tokenSelection(input)
        let scale = inverseCount(keeps.counts.kept)
        var diag = TokenDiagnostics()
        let (loss, kept) = ObjectiveLosses.weightedNLL(input, detached: detached, dlogits: dlogits, scale: scale,
                                              objective: name, diag: &diag) { r, logp in keeps.keeps(r, logp) ? 1 : 0 }
        var d: [String: Double] = ["kept_ratio": kept], c: [String: Double] = ["kept_ratio": diag.count]
        diag.into(&d, &c)
        return ObjectiveResult(loss: loss * Double(scale), diagnostics: d, diagnosticCounts: c)
    }
}

/// Where token-clean's and forgetting's scores come from.
public enum TokenScores: String, CaseIterable, Sendable {
    /// Once before training, initial weights against the reference, over the training set.
    case fixed
    /// Every step, the current model against the reference, over the step's batch.
    case online
    var requirements: ObjectiveRequirements {
        // Fixed: a row's loss reads its logits, its label and the step's counts only, so the
        // trainer may fuse the LM head in (row-local) and needs no reference forward.
        var r = ObjectiveRequirements(referenceModel: self == .online, statisticsPass: self == .online, rowLocal: self == .fixed)
        r.tokenLabels = self == .fixed
        return r
    }
}

/// An objective that keeps the global top `ratio` of the loss tokens by excess loss
/// (token-clean, forgetting). Online: the statistics pass scores tokens, `beginStep` selects
/// once from every rank's scores, and each micro-batch reads the step's selection. Fixed: the
/// rows carry their labels (`Trainer.tokenLabels`), counted over the step batch.
protocol ExcessLossSelecting: Objective {
    var ratio: Double { get }
    var scores: TokenScores { get }
    var selection: StepCache<ExcessLossSelection> { get }
}

/// A micro-batch's view of the step's selection: the global counts and whether row r is kept.
struct TokenSelection {
    var counts: (kept: Double, total: Double)
    var keeps: (_ row: Int, _ detachedLogP: Float) -> Bool
}

extension ExcessLossSelecting {
    public func statistics(_ input: ObjectiveInput) -> [Float] {
        ExcessLossSelection.scores(input, logits: input.logits, objective: name)
    }
    public func beginStep(_ context: StepContext) {
        if scores == .online { selection.store(context) { ExcessLossSelection($0, ratio: ratio) } }
    }

    func tokenSelection(_ input: ObjectiveInput) -> TokenSelection {
        if scores == .fixed {
            precondition(input.tokenWeights.count == input.rows || !input.mask.contains { $0 != 0 },
                         "objective \(name) scores=fixed: the rows carry no token labels (Trainer.tokenLabels)")
            return TokenSelection(counts: Self.labelledCounts(input, objective: name)) { r, _ in input.tokenWeights[r] > 0 }
        }
        let sel = selection.value(input.context, objective: name) { ExcessLossSelection($0, ratio: ratio) }
        let ref = requireReference(input, name)
        return TokenSelection(counts: (sel.kept, sel.total)) { r, logp in
            sel.keeps(ExcessLossSelection.score(input, row: r, detachedLogP: logp, reference: ref))
        }
    }

    /// Kept (label 1) and all loss tokens of the whole step batch, the same on every rank.
    static func labelledCounts(_ input: ObjectiveInput, objective: String) -> (kept: Double, total: Double) {
        var kept = 0.0, total = 0.0
        for s in input.sequences {
            for t in 1..<max(1, s.ids.count) where s.lossMask[t] != 0 {
                precondition(s.tokenWeights.count == s.ids.count, "objective \(objective) scores=fixed: sequence of example \(s.example) has no token labels")
                total += 1; kept += Double(s.tokenWeights[t])
            }
        }
        return (kept, total)
    }
}

/// The global top-ratio selection by excess loss ℓ_θ − ℓ_ref, shared with `forgetting`.
struct ExcessLossSelection {
    var threshold: Float      // keep score ≥ threshold
    var kept: Double          // global kept count (the normaliser)
    var total: Double         // global loss tokens scored

    /// ℓ_θ − ℓ_ref of one loss row, from log sg(p_θ(y)) and the reference row.
    @inline(__always)
    static func score(_ input: ObjectiveInput, row r: Int, detachedLogP: Float, reference: UnsafePointer<Float>) -> Float {
        let V = input.vocab, zr = reference + r * V
        let logpRef = zr[Int(input.targets[r])] - SoftmaxKernels.logSumExp(zr, count: V)
        return logpRef - detachedLogP
    }

    /// The scores of this micro-batch's loss rows, in row order (the statistics pass).
    /// Computed with the same expression as the gradient pass so a token's side of the
    /// threshold is the same in both.
    static func scores(_ input: ObjectiveInput, logits: UnsafePointer<Float>, objective: String) -> [Float] {
        let ref = requireReference(input, objective)
        let V = input.vocab
        var out: [Float] = []
        for r in 0..<input.rows where input.mask[r] != 0 {
            let y = lossTarget(input, r, objective), z = logits + r * V
            out.append(score(input, row: r, detachedLogP: z[y] - SoftmaxKernels.logSumExp(z, count: V), reference: ref))
        }
        return out
    }

    init(_ context: StepContext, ratio: Double) {
        var all = context.statistics.flatMap { $0 }
        let (t, k, n) = Self.topRatio(&all, ratio: ratio)
        threshold = t; kept = Double(k); total = Double(n)
    }

    /// The threshold that keeps the top ⌈ratio·n⌉ of the scores (NaN left out; ties at the
    /// threshold all kept), how many it keeps, and n. Sorts `scores` in place.
    static func topRatio(_ scores: inout [Float], ratio: Double) -> (threshold: Float, kept: Int, total: Int) {
        scores.removeAll { $0.isNaN }
        guard !scores.isEmpty else { return (.infinity, 0, 0) }
        let k = min(scores.count, max(1, Int((ratio * Double(scores.count)).rounded(.up))))
        scores.sort(by: >)
        let threshold = scores[k - 1]
        return (threshold, scores.prefix { $0 >= threshold }.count, scores.count)
    }

    @inline(__always)
    func keeps(_ score: Float) -> Bool { score >= threshold }
}
