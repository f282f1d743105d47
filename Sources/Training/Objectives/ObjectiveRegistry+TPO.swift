/// Triple Preference Optimization, Saeidi et al., arXiv:2405.16681, §3 (Eqs. 5–7), as TRL's
/// `TPOTrainer` (trl.experimental, 1.16) computes it: each row has a prompt and three answers —
/// chosen y_w, rejected y_l and a gold y_ref (TRL's `"reference"` column: an answer, not a
/// reference model; there is none) — and
///
///   L = (1/P) Σ_pairs ℓ_type(ℓ_w − ℓ_l) + tpo_alpha·(1/N_ref) Σ_{gold loss tokens} −log p,
///
/// ℓ_w, ℓ_l the summed log-probs of the answers (sigmoid, hinge) or their means (ipo, tpo-l), and
/// ℓ_type CPOObjective's pair losses: sigmoid −(1 − ε)·log σ(βΔ) − ε·log σ(−βΔ), hinge
/// max(0, 1 − βΔ), ipo (Δ − 1/(2β))², tpo-l the sigmoid's at Δ − γ/β (TPO-L, the paper's §3.2
/// length-normalised variant with a target margin γ = tpo_l_gamma). P triples and N_ref gold
/// loss tokens are the whole step batch's (TRL's NLL is each device's `cross_entropy` mean), so
/// the loss does not depend on the rank count. The gold answer enters the step batch after its
/// pair (`PairRole.gold`, `PairProducer`); at tpo_alpha 0 it is not read, as TRL's collator drops it.
/// Diagnostics as cpo's (TRL's names; `entropy` over the gold tokens too, as TRL's), plus `nll_loss`.
extension ObjectiveRegistry {
    /// tpo's arguments, TRL's `TPOConfig` names and defaults: `beta` 0.01, `loss_type` sigmoid
    /// (hinge, ipo, tpo-l), `label_smoothing` 0 (read by sigmoid and tpo-l), `tpo_alpha` 1,
    /// `tpo_l_gamma` 0.5 (read by tpo-l). A setting its loss type does not read is refused, as
    /// cpo's are (TRL warns about label_smoothing there and ignores tpo_l_gamma silently).
    static func makeTPO(_ args: inout ObjectiveArgs) throws -> CPOObjective {
        let types: [(name: String, type: CPOObjective.LossType)] = [("sigmoid", .sigmoid), ("hinge", .hinge), ("ipo", .ipo), ("tpo-l", .simpo)]
        let given = args.string("loss_type", default: "sigmoid")
        guard let type = types.first(where: { $0.name == given })?.type else {
            throw ObjectiveError("objective tpo: unknown loss_type \(RecipeError.quote(given)); known: \(types.map(\.name).joined(separator: ", "))")
        }
        try args.refuseUnread([("label_smoothing", ["sigmoid", "tpo-l"]), ("tpo_l_gamma", ["tpo-l"])], by: given, given: given)
        args.used.formUnion(["label_smoothing", "tpo_l_gamma"])
        return try CPOObjective(name: "tpo", beta: try args.float("beta", default: 0.01),
                                labelSmoothing: [.sigmoid, .simpo].contains(type) ? try args.float("label_smoothing", default: 0) : 0,
                                lossType: type, cpoAlpha: try args.float("tpo_alpha", default: 1),
                                simpoGamma: type == .simpo ? try args.float("tpo_l_gamma", default: 0.5) : 0.5,
                                alpha: 0, nllRole: .gold, alphaName: "tpo_alpha")
    }
}
