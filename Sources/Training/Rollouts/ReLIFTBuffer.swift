import Foundation

/// ReLIFT's buffer of hardest prompts (arXiv 2506.07527, §3; `TheRoadQaQ/ReLIFT`
/// `relift/trainer.py`, `sft_buffer_batch`): the training rows whose prompts no rollout
/// solved, newest first. A generation's failed prompts go in front, in prompt order, and an
/// SFT step takes the first `sftDataSize` (ReLIFT concatenates `[new, buffer]` and slices off
/// the first `sft_data_size`). Every rank holds the whole generation's rewards, so every rank
/// computes the same buffer from the same values: the coordinator's decision without a
/// gather, in an order that does not depend on the rank count.
public struct ReLIFTBuffer: Equatable {
    /// Training-row indices, newest first.
    public private(set) var rows: [Int] = []
    public init(rows: [Int] = []) { self.rows = rows }
    public var count: Int { rows.count }

    /// The prompts of a generation whose rollouts all failed: G consecutive rollouts per prompt,
    /// a rollout succeeding when its first reward function (the verifier, as `accuracy` counts)
    /// gives ≥ 1. ReLIFT's rule is "every reward equals the fail value 0" with 1/0 rewards.
    public static func failedPrompts(_ rollouts: ArraySlice<StepSequence>, groupSize g: Int) -> [Int] {
        precondition(g >= 1 && rollouts.count % g == 0, "ReLIFTBuffer: \(rollouts.count) rollouts in groups of \(g)")
        let start = rollouts.startIndex
        return (0..<(rollouts.count / g)).filter { k in
            rollouts[(start + k * g)..<(start + (k + 1) * g)].allSatisfy { !$0.solved }
        }
    }

    public mutating func pushFront(_ newest: [Int]) { rows = newest + rows }

    /// Removes and returns the first `n` rows (the newest), or nil when fewer are held.
    public mutating func pop(_ n: Int) -> [Int]? {
        guard n >= 1, rows.count >= n else { return nil }
        defer { rows.removeFirst(n) }
        return Array(rows.prefix(n))
    }
}
