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
        precondition(rollouts.count == demonstrations.count * g, "GroupedDemonstrations: \(rollouts.count) rollouts for \(demonstrations.count) prompts of \(g)")
        let merged = demonstrations.indices.flatMap { k in Array(rollouts[(k * g)..<((k + 1) * g)]) + [demonstrations[k]] }
        let adv = GroupAdvantages(rewards: merged, groupSize: g + 1, scaling: scaling)
        var r: [Float] = [], d: [Float] = []
        for k in demonstrations.indices {
            r += adv.advantages[(k * (g + 1))..<(k * (g + 1) + g)]
            d.append(adv.advantages[k * (g + 1) + g])
        }
        return (r, d, adv.zeroStdGroups)
    }
}
