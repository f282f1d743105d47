import Foundation

/// Online DPO's pairs (Guo et al., arXiv:2402.04792, §3; TRL's `OnlineDPOTrainer`, trl.experimental
/// 1.16): each prompt's two rollouts, scored Σ_f w_f·r_f by the reward functions less
/// `missing_eos_penalty` for one that did not stop (TRL subtracts it from answers without an
/// eos token), the higher score chosen — the first on a tie, as TRL's `first >= second`. The
/// score is kept as the rollout's `advantage` (online-dpo reads no advantage), so a checkpointed
/// generation resumes with its ranking; the pair links are set per step batch, where each pair's
/// two rollouts sit next to each other.
public enum RankedPairs {
    /// What a run ranks with: the `missing_eos_penalty` (nil: none).
    public struct Settings: Sendable { public var penalty: Double? }

    /// Marks rollouts 2k, 2k + 1 (one prompt's two) chosen and rejected by `scores` less the
    /// penalty where `stopped` is false.
    public static func rank(_ sequences: inout [StepSequence], scores: [Double], stopped: [Bool], penalty: Double?) {
        precondition(sequences.count % 2 == 0 && scores.count == sequences.count && stopped.count == sequences.count,
                     "online-dpo ranks two rollouts per prompt")
        for i in sequences.indices {
            sequences[i].advantage = Float(scores[i] - (stopped[i] ? 0 : penalty ?? 0))
        }
        for k in stride(from: 0, to: sequences.count, by: 2) {
            let firstWins = sequences[k].advantage >= sequences[k + 1].advantage
            sequences[k].pairRole = firstWins ? .chosen : .rejected
            sequences[k + 1].pairRole = firstWins ? .rejected : .chosen
        }
    }

    /// Links each ranked rollout of a step batch to its neighbour (its index in `batch`).
    public static func link(_ batch: inout [StepSequence]) {
        for i in batch.indices where batch[i].pairRole != .none { batch[i].pair = i ^ 1 }
    }

    /// TRL's figures of a step's pairs: `objective/scores` (the mean score), `objective/scores_margin`
    /// (mean chosen − rejected score) and `val/contain_eos_token` (share of rollouts that stopped).
    public static func metrics(_ batch: [StepSequence], stopIds: Set<Int32>) -> [(String, Double)] {
        let ranked = batch.filter { $0.pairRole != .none }
        guard !ranked.isEmpty else { return [] }
        let n = Double(ranked.count)
        let margin = stride(from: 0, to: ranked.count - 1, by: 2).reduce(0.0) { m, k in
            let (a, b) = (Double(ranked[k].advantage), Double(ranked[k + 1].advantage))
            return m + (ranked[k].pairRole == .chosen ? a - b : b - a)
        }
        let stopped = ranked.filter { $0.stopped(stopIds) }.count
        return [("objective/scores", ranked.reduce(0) { $0 + Double($1.advantage) } / n),
                ("objective/scores_margin", margin / (n / 2)), ("val/contain_eos_token", Double(stopped) / n)]
    }
}
