import Foundation
import Models

/// reward: a Bradley–Terry reward model on preference pairs (Ouyang et al., arXiv 2203.02155
/// §3.5; TRL 1.16's `RewardTrainer.compute_loss`). The model is a reward model
/// (`SequenceScoreHead`: logits [N, 1], one score per position) and a sequence's reward r is the
/// score at its last input token that is not the pad id (transformers'
/// `*ForSequenceClassification`). Per pair, chosen c and rejected j:
///
///   ℓ = −log σ(r_c − r_j − m) + λ·(r_c + r_j)²,   L = Σ ℓ / P
///
/// m the pair's `"margin"` in the data (TRL's optional column; 0 without), λ = `center_rewards_coefficient` (unset: no term; Eisenstein et al., arXiv 2312.09244 §3,
/// which keeps rewards near zero), P the pairs of the whole step batch (TRL's mean over a batch).
/// The gradient reaches one row per sequence:
///   ∂ℓ/∂r_c = −σ(−d) + 2λ(r_c + r_j),   ∂ℓ/∂r_j = σ(−d) + 2λ(r_c + r_j),   d = r_c − r_j − m.
/// The data's sequences carry one token past their last (`Dataset.withTrailingPad`), so the
/// sequence's own last token — TRL appends eos — is an input the reward can be read at.
///
/// Figures, as TRL logs them: `accuracy` (share of pairs with r_c > r_j), `margin` (mean
/// r_c − r_j), `mean_reward` (mean over both answers); TRL's `min_reward` and `max_reward` are
/// not logged (the trainer reduces sums only).
public final class RewardObjective: Objective {
    public let name = "reward"
    public let centerRewardsCoefficient: Double?
    /// Set by the run (`RunSetup.prepare`): the id rewards are not read at — the model's
    /// pad_token_id, or the tokenizer's pad.
    public var padTokenId: Int32?
    public var requirements: ObjectiveRequirements {
        var r = ObjectiveRequirements(pairs: true)
        r.sequenceScores = true
        return r
    }

    public init(centerRewardsCoefficient: Double?) throws {
        if let c = centerRewardsCoefficient, !(c.isFinite && c >= 0) {
            throw ObjectiveError("center_rewards_coefficient must be a finite number ≥ 0, got \(c)")
        }
        self.centerRewardsCoefficient = centerRewardsCoefficient
    }

    /// Each sequence's reward row in the micro-batch: the row of its input position
    /// `SequenceScoreHead.rewardPosition` picks (a sequence's rows come in position order).
    func rewardRows(_ input: ObjectiveInput) -> [Int: Int] {
        var rows: [Int: (first: Int, count: Int)] = [:]
        for r in 0..<input.rows where input.sequenceId[r] >= 0 {
            let s = Int(input.sequenceId[r])
            rows[s] = rows[s].map { ($0.first, $0.count + 1) } ?? (r, 1)
        }
        var out: [Int: Int] = [:]
        for (s, rs) in rows {
            let ids = input.sequences[s].ids
            let at = SequenceScoreHead.rewardPosition(ids.dropLast(), pad: padTokenId)
            precondition(rs.count == ids.count - 1 && at < rs.count, "objective reward: sequence \(s) is not whole in its micro-batch")
            out[s] = rs.first + at
        }
        return out
    }

    public func lossAndGradient(_ input: ObjectiveInput, dlogits: UnsafeMutablePointer<Float>) -> ObjectiveResult {
        precondition(input.vocab == 1, "objective reward needs a reward model (one score per position), got \(input.vocab) logits per position")
        let rows = rewardRows(input)
        let P = Double(max(input.globalPairs, 1))
        var loss = 0.0, correct = 0.0, margin = 0.0, rewardSum = 0.0, pairs = 0.0
        // In step-batch order: a dictionary's order changes with each process's hash seed, and the
        // sums' bits with it (a resume would not be bit-exact).
        for s in rows.keys.sorted() where input.sequences[s].pairRole == .chosen {
            let rc = rows[s]!
            guard let rj = rows[input.sequences[s].pair] else { preconditionFailure("objective reward: pair \(s) split over micro-batches") }
            let c = Double(input.logits[rc]), j = Double(input.logits[rj])
            let d = c - j - Double(input.sequences[s].margin)
            // −log σ(d) = softplus(−d), stable at either sign.
            var l = max(-d, 0) + log1p(exp(-abs(d)))
            let sigmoidNeg = d >= 0 ? exp(-d) / (1 + exp(-d)) : 1 / (1 + exp(d))   // σ(−d)
            var gc = -sigmoidNeg, gj = sigmoidNeg
            if let lambda = centerRewardsCoefficient {
                l += lambda * (c + j) * (c + j)
                gc += 2 * lambda * (c + j); gj += 2 * lambda * (c + j)
            }
            loss += l / P
            dlogits[rc] += Float(gc / P); dlogits[rj] += Float(gj / P)
            pairs += 1; correct += c > j ? 1 : 0; margin += c - j; rewardSum += c + j
        }
        return ObjectiveResult(loss: loss, diagnostics: ["accuracy": correct, "margin": margin, "mean_reward": rewardSum],
                               diagnosticCounts: ["accuracy": pairs, "margin": pairs, "mean_reward": 2 * pairs])
    }
}
