import Foundation
import TensorCore

/// A*-PO, Brantley et al., "Accelerating RL for LLM Reasoning with Optimal Advantage
/// Regression", arXiv 2505.20686, §3 (Algorithm 1), as TRL 1.16's `A2POTrainer`
/// (trl.experimental) trains it. Stage 1, before the first step, estimates each prompt's optimal
/// value V*(x) from N samples of the reference policy (`Rollouts/OptimalValues.swift`); stage 2
/// samples one completion per prompt from the policy and regresses its implicit reward onto the
/// optimal advantage:
///
///   D_i = Σ_t m_t·(log π_θ(y_t) − log π_ref(y_t)),   L = (1/B)·Σ_i (β2·D_i − (r_i − V*(x_i)))²,
///   ∂L/∂log π_θ(y_t) = m_t·2·(β2·D_i − A_i)·β2/B,
///
/// r_i the rollout's weighted reward Σ w·r (TRL's reward_weights), A_i = r_i − V*(x_i) its
/// advantage, formed by the producer and detached, B the rollouts of the step batch (all ranks),
/// π_ref the frozen reference (the initial weights or `--ref-model`), forwarded per micro-batch.
/// The log-probs are of the raw logits, as TRL's `_get_sequence_logps` takes them (no
/// temperature: `Recipe.logitTemperature`). Arguments (TRL's names and defaults): `beta1` 0.5
/// (stage 1's KL temperature), `beta2` 1e-3 (stage 2's), `num_value_samples` 8,
/// `filter_all_incorrect` true. Figures (TRL's): `implicit_reward` (mean β2·D_i) and
/// `advantage` (mean A_i), over rollouts; the producer logs `v_star` and `reward`.
public final class A2POObjective: Objective, RolloutPolicyObjective {
    public let name = "a2po"
    public let trainerName = "A2POTrainer"
    public let requirements: ObjectiveRequirements
    public let beta1: Double, beta2: Double, valueSamples: Int, filterAllIncorrect: Bool

    public init(beta1: Float = 0.5, beta2: Float = 1e-3, valueSamples: Int = 8, filterAllIncorrect: Bool = true) throws {
        try checkArg(beta1 > 0, "a2po", "beta1 must be > 0, got \(beta1)")
        try checkArg(beta2 > 0, "a2po", "beta2 must be > 0, got \(beta2)")
        self.beta1 = Double(beta1); self.beta2 = Double(beta2); self.valueSamples = valueSamples
        self.filterAllIncorrect = filterAllIncorrect
        var r = ObjectiveRequirements(referenceModel: true)
        r.rollouts = true
        r.rolloutsPerPrompt = 1
        requirements = r
    }

    public func lossAndGradient(_ input: ObjectiveInput, dlogits: UnsafeMutablePointer<Float>) -> ObjectiveResult {
        let V = input.vocab, B = input.sequences.count
        guard let ref = input.referenceLogits else { preconditionFailure("objective a2po needs the reference model's logits") }
        // Pass 1: each loss row's log-prob (RolloutTokenRows, with no π_old: there is no ratio to
        // the sampler here) and each rollout's summed log-ratio to the reference D_i.
        let rows = RolloutTokenRows(input, detached: nil, objective: name), present = rows.present
        var logRatio = [Double](repeating: 0, count: B), tokens = logRatio, expected = logRatio
        for r in 0..<input.rows where input.sequenceId[r] >= 0 && input.mask[r] != 0 {
            let s = Int(input.sequenceId[r]), refLogp = Double(targetLogProb(ref + r * V, Int(input.targets[r]), V))
            logRatio[s] += Double(input.mask[r]) * (Double(rows.logp[r]) - refLogp)
            tokens[s] += Double(input.mask[r]); expected[s] = Double(input.sequenceLossTokens[r])
        }
        // Per rollout: the squared error and its slope in D_i.
        var slope = [Double](repeating: 0, count: B)
        var loss = 0.0, implicitReward = 0.0, advantage = 0.0
        for s in present.sorted() {
            precondition(tokens[s] == expected[s], "objective a2po: a rollout split between calls")
            let a = Double(input.sequences[s].advantage), u = beta2 * logRatio[s] - a
            loss += u * u / Double(B)
            slope[s] = 2 * u * beta2 / Double(B)
            implicitReward += beta2 * logRatio[s]; advantage += a
        }
        // Pass 2: ∂L/∂z_v = g·([v = y] − p_v) on each loss row, g = m_t·slope_i.
        var diag = TokenDiagnostics()
        for r in 0..<input.rows where input.mask[r] != 0 {
            rows.addGradient(input, row: r, Float(Double(input.mask[r]) * slope[Int(input.sequenceId[r])]), dlogits: dlogits, diag: &diag)
        }
        let n = Double(present.count)
        return ObjectiveResult(loss: loss, diagnostics: ["implicit_reward": implicitReward, "advantage": advantage],
                               diagnosticCounts: ["implicit_reward": n, "advantage": n])
    }
}

extension ObjectiveRegistry {
    /// a2po's arguments, TRL's `A2POConfig` names and defaults.
    static func makeA2PO(_ args: inout ObjectiveArgs) throws -> A2POObjective {
        try A2POObjective(beta1: try args.float("beta1", default: 0.5), beta2: try args.float("beta2", default: 1e-3),
                          valueSamples: try args.int("num_value_samples", default: 8, in: 1...4096),
                          filterAllIncorrect: try args.bool("filter_all_incorrect", default: true))
    }
}
