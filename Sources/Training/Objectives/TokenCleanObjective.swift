import Foundation
import TensorCore

/// Token Cleaning, "Token Cleaning: Fine-Grained Data Selection for LLM Supervised Fine-Tuning",
/// arXiv 2502.01968 (code: `UCSC-REAL/TokenCleaning`
/// `generate_token_label.py` (`get_global_top_k_indices`, `loss_diff`), `finetune.py`).
///
///   score_t = ℓ_base,t − ℓ_ref,t,   keep the top `ratio` of the step's loss tokens by score,
///   L = Σ_{t kept} M_t·(−log p_t) / |kept|_global,   ∂L/∂z = M·(softmax − onehot(y)) / |kept| on kept tokens.
///
/// ℓ_base: the paper scores offline with the base model and a reference (the base LoRA-tuned on
/// a small high-quality subset), once. We score online, every step: ℓ_base is the current
/// model's token loss (detached; it *is* the base model at step 0) and ℓ_ref comes from the
/// frozen `--ref-model` (`input.referenceLogits`). Keeping the tokens the reference finds much
/// easier than the model is the same excess-loss rule, kept current as the model learns (the
/// spirit of the paper's self-evolving variant). Without `--ref-model` the reference is the
/// initial weights and all scores start at 0, so this objective wants `--ref-model`.
/// Selection is global (`select_token_level=global` of the scripts) over the step's whole
/// batch on all ranks: the statistics pass gathers every loss token's score, `beginStep` finds
/// the threshold (the ⌈ratio·n⌉-th largest score; ties at it are all kept). Detached: scores
/// and selection. Normalisation: HF `outputs.loss` = mean over kept tokens, here the global
/// kept count. Argument: `ratio` (0.6 = `data_prop`, in (0, 1]). Diagnostics: kept ratio.
public final class TokenCleanObjective: Objective, DetachedEvaluable, ExcessLossSelecting {
    public let name = "token-clean"
    public let requirements = ObjectiveRequirements(referenceModel: true, statisticsPass: true)
    public let ratio: Float
    let selection = StepCache<ExcessLossSelection>()

    public init(ratio: Float = 0.6) throws {
        try checkArg(ratio > 0 && ratio <= 1, "token-clean", "ratio must be in (0, 1], got \(ratio)")
        self.ratio = ratio
    }

    public func evaluate(_ input: ObjectiveInput, detached: UnsafePointer<Float>,
                         dlogits: UnsafeMutablePointer<Float>?) -> ObjectiveResult {
        let sel = currentSelection(input)
        let ref = requireReference(input, name)
        let scale = inverseCount(sel.kept)
        var diag = TokenDiagnostics()
        let (loss, kept) = ObjectiveLosses.weightedNLL(input, detached: detached, dlogits: dlogits, scale: scale,
                                              objective: name, diag: &diag) { r, logp in
            sel.keeps(ExcessLossSelection.score(input, row: r, detachedLogP: logp, reference: ref)) ? 1 : 0
        }
        var d: [String: Double] = ["kept_ratio": kept], c: [String: Double] = ["kept_ratio": diag.count]
        diag.into(&d, &c)
        return ObjectiveResult(loss: loss * Double(scale), diagnostics: d, diagnosticCounts: c)
    }
}

/// An objective that keeps the global top `ratio` of the step's loss tokens by excess loss
/// (token-clean, forgetting): the statistics pass scores tokens, `beginStep` selects once from
/// every rank's scores, and each micro-batch reads the step's selection.
protocol ExcessLossSelecting: Objective {
    var ratio: Float { get }
    var selection: StepCache<ExcessLossSelection> { get }
}

extension ExcessLossSelecting {
    public func statistics(_ input: ObjectiveInput) -> [Float] {
        ExcessLossSelection.scores(input, logits: input.logits, objective: name)
    }
    public func beginStep(_ context: StepContext) {
        selection.store(context) { ExcessLossSelection($0, ratio: ratio) }
    }
    func currentSelection(_ input: ObjectiveInput) -> ExcessLossSelection {
        selection.value(input.context, objective: name) { ExcessLossSelection($0, ratio: ratio) }
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

    init(_ context: StepContext, ratio: Float) {
        var all = context.statistics.flatMap { $0 }.filter { !$0.isNaN }
        total = Double(all.count)
        guard !all.isEmpty else { threshold = .infinity; kept = 0; return }
        let k = min(all.count, max(1, Int((Double(ratio) * Double(all.count)).rounded(.up))))
        all.sort(by: >)
        threshold = all[k - 1]
        kept = Double(all.prefix { $0 >= all[k - 1] }.count)
    }

    @inline(__always)
    func keeps(_ score: Float) -> Bool { score >= threshold }
}
