import Foundation

/// Objectives whose demonstrations join the rollout groups (SRFT, arXiv 2506.19767 §4: the
/// group of a prompt is its G rollouts ∪ its demonstration): the rollout producer appends each
/// sampled prompt's training row, scores it with the same reward functions, and forms every
/// advantage over the G + 1 rewards of the group.
public protocol GroupedDemonstrationObjective: Objective {}

/// The demonstrations of a generation's prompts and the group advantages over rollouts ∪
/// demonstrations. Prompts must be the training rows' own (`--data`), so prompt i has row
/// `example` as its demonstration.
public struct GroupedDemonstrations {
    public let examples: [Example]
    /// Per prompt (after fitting): the training row it was taken from.
    public let exampleOfPrompt: [Int]
    public init(examples: [Example], exampleOfPrompt: [Int]) {
        precondition(exampleOfPrompt.allSatisfy { examples.indices.contains($0) })
        self.examples = examples; self.exampleOfPrompt = exampleOfPrompt
    }

    /// Advantages with rollouts and demonstrations in one group: `rollouts` holds G rewards per
    /// prompt (prompt-major), `demonstrations` one per prompt. The groups are laid out as
    /// G rollouts then the demonstration and go through `GroupAdvantages` (the same
    /// `scale_rewards` rules; `batch` takes its std over rollouts and demonstrations alike).
    public static func advantages(rollouts: [Double], demonstrations: [Double], groupSize g: Int,
                                  scaling: RewardScaling) -> (rollouts: [Float], demonstrations: [Float], zeroStdGroups: Int) {
        advantages(rollouts: [rollouts], demonstrations: [demonstrations], weights: [1], groupSize: g,
                   scaling: scaling, aggregation: .sumThenNormalize)
    }

    /// The same over several reward functions (`rollouts[f]`, `demonstrations[f]`: function f's
    /// rewards), combined by `aggregation` over the groups of G + 1 (normalize_then_sum: each
    /// function z-scored in the G + 1, the batch std over rollouts and demonstrations alike).
    public static func advantages(rollouts: [[Double]], demonstrations: [[Double]], weights: [Double], groupSize g: Int,
                                  scaling: RewardScaling, aggregation: RewardAggregation) -> (rollouts: [Float], demonstrations: [Float], zeroStdGroups: Int) {
        let prompts = demonstrations.first?.count ?? 0
        precondition(rollouts.count == demonstrations.count && rollouts.allSatisfy { $0.count == prompts * g },
                     "GroupedDemonstrations: \(rollouts.map(\.count)) rollouts for \(prompts) prompts of \(g)")
        let merged = zip(rollouts, demonstrations).map { (r: [Double], d: [Double]) -> [Double] in
            var row: [Double] = []
            for k in 0..<prompts { row += r[(k * g)..<((k + 1) * g)]; row.append(d[k]) }
            return row
        }
        let adv = aggregation.advantages(merged, weights: weights, groupSize: g + 1, scaling: scaling)
        var r: [Float] = [], d: [Float] = []
        for k in 0..<prompts {
            r += adv.advantages[(k * (g + 1))..<(k * (g + 1) + g)]
            d.append(adv.advantages[k * (g + 1) + g])
        }
        return (r, d, adv.zeroStdGroups)
    }
}
