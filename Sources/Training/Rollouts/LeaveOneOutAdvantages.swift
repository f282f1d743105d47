import Foundation
import Models

/// RLOO's advantages of one generation batch (Ahmadian et al., "Back to Basics: Revisiting
/// REINFORCE Style Optimization for Learning from Human Feedback in LLMs", arXiv 2402.14740:
/// the REINFORCE leave-one-out estimator), as TRL 1.16's `RLOOTrainer._generate_and_score_completions`
/// forms them. G consecutive rollouts per prompt form a group;
///
///   r_i = clamp(Σ_f w_f·r_f,i, reward_clip_range) − β·kl_i,   kl_i = Σ_t m_t·(log π_old(y_t) − log π_ref(y_t))   (the KL penalty in the reward)
///   A_i = r_i − (Σ_{j≠i} r_j) / (G − 1)                                                  (the leave-one-out baseline; G: the group's scored rollouts)
///   A_i ← (A_i − mean_B A) / (std_B A + 1e-4)                                            (normalize_advantages only)
///
/// kl_i is the first-order estimate summed over the rollout's trained tokens (TRL's; it can be
/// negative), π_old and π_ref forwards of the weights that sampled the rollouts and of the
/// frozen reference at the rollout temperature, detached, as TRL's old and reference log-probs.
/// The same forward for both, not the sampler's log-probs (whose decode path rounds otherwise):
/// a reference equal to the policy (the initial weights) gives exactly 0. A group whose
/// penalised rewards are all equal carries no signal: its advantages are exactly 0, where
/// r − (Σ − r)/(G − 1) would leave a rounding residue (2e-16 for eight rewards of 1.1) that
/// Adam would scale to a step — as `GroupAdvantages` does for grpo. mean_B and the Bessel std_B run over every rollout of the
/// generation batch that has a baseline (scored, with a scored sibling). A group of one rollout (an evaluation with `eval_rollouts 1`) gets 0, as
/// TRL's. Computed in Double from the whole batch, which every rank holds.
public struct LeaveOneOutAdvantages {
    public var advantages: [Float]
    /// Σ_i kl_i and the trained tokens it ran over (TRL's logged `kl` is their ratio).
    public var klSum: Double, klTokens: Double

    public init(rewards: [Double], kl: [Double], tokens: [Double], beta: Double, groupSize g: Int, normalize: Bool,
                clip: ClosedRange<Double>? = nil) {
        precondition(g >= 1 && rewards.count % g == 0 && kl.count == rewards.count && tokens.count == rewards.count,
                     "LeaveOneOutAdvantages: \(rewards.count) rewards, \(kl.count) KL sums in groups of \(g)")
        // (An unscorable rollout's NaN stays NaN.)
        let penalised = zip(rewards, kl).map { r, k in r.isNaN ? r : (clip.map { min(max(r, $0.lowerBound), $0.upperBound) } ?? r) - beta * k }
        var adv = [Double](repeating: 0, count: rewards.count)
        // The rollouts with an advantage: scored, in a group of two scored or more (g = 1: every
        // one, at 0, as TRL's zeros).
        var normalised = [Bool](repeating: g == 1, count: rewards.count)
        if g > 1 {
            for k in 0..<(rewards.count / g) {
                // The baseline averages the scored siblings only: an unscorable rollout (NaN, no
                // function scored it) is left out, and keeps advantage 0, as TRL's; a group with
                // fewer than two scored rollouts has no baseline (TRL: 0/0, then 0).
                let group = (k * g)..<((k + 1) * g)
                let r = group.filter { !penalised[$0].isNaN }
                if r.count < 2 { continue }
                for i in r { normalised[i] = true }
                if r.allSatisfy({ penalised[$0] == penalised[r[0]] }) { continue }
                let sum = r.reduce(0) { $0 + penalised[$1] }
                for i in r { adv[i] = penalised[i] - (sum - penalised[i]) / Double(r.count - 1) }
            }
        }
        if normalize {
            // Over the rollouts with an advantage; the others keep 0 (TRL's are NaN there: its
            // nanmean and nanstd leave them out, nan_to_num makes them 0).
            let scorable = penalised.indices.filter { normalised[$0] }
            let mean = scorable.reduce(0) { $0 + adv[$1] } / Double(max(scorable.count, 1))
            let std = GroupAdvantages.besselStd(scorable.map { adv[$0] }[...])
            for i in scorable { adv[i] = (adv[i] - mean) / (std + GroupAdvantages.epsilon) }
        }
        advantages = adv.map { Float($0) }
        klSum = kl.reduce(0, +); klTokens = tokens.reduce(0, +)
    }

    /// The KL penalty's inputs: the frozen reference (the initial weights or `--ref-model`), β and
    /// the temperature the rollouts were sampled at, which divides the reference's logits too.
    public struct Penalty {
        public let reference: LanguageModel
        public let beta: Double
        public let temperature: Float
    }

    /// Per sequence: kl_i = Σ_t m_t·(log π_old − log π_ref) over its trained tokens, and their
    /// count. The policy (`p.model`, the weights that sampled them) and the reference score the
    /// sequences in the same fixed chunks dealt over ranks (`CandidateScoring.scoreInChunks`), so
    /// every rank gets the same values for any rank count.
    static func klSums(_ sequences: [StepSequence], penalty: Penalty, _ p: StepPreparation) -> (kl: [Double], tokens: [Double]) {
        let scorer = TargetLogProbScorer(temperature: penalty.temperature)
        let k = chunk(longest: sequences.map(\.ids.count).max() ?? 1, vocab: p.model.vocabSize)
        // The padding after a rollout is never read by its own positions (causal attention):
        // id 0, in every vocabulary, pads (a tokenizer's pad id may lie past a small model's table).
        func score(_ model: LanguageModel) -> [[Float]] {
            CandidateScoring.scoreInChunks(sequences, chunk: k, with: scorer, model: model, comm: p.comm, padId: 0)
        }
        let old = score(p.model), reference = score(penalty.reference)
        return (zip(old, reference).map { TargetLogProbScorer.sum($0) - TargetLogProbScorer.sum($1) }, reference.map { Double($0[2]) })
    }

    /// Rollouts per scoring forward: 16, fewer where their logits ([16, longest, V] floats) would
    /// pass 64 MiB; a function of the generation alone, the same on every rank.
    static func chunk(longest: Int, vocab: Int) -> Int {
        let perSequence = max(1, longest) * max(1, vocab) * MemoryLayout<Float>.size
        return min(16, max(1, (64 << 20) / perSequence))
    }
}
