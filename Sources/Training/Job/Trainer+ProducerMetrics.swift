import Foundation

/// A producer with figures of its own for each step's metrics row (rollouts: rewards,
/// completion lengths, the generate / score time).
public protocol ReportsStepMetrics: AnyObject {
    /// The last `prepare`'s figures, the same on every rank.
    var lastMetrics: [(String, Double)] { get }
}

extension RolloutProducer: ReportsStepMetrics {}

extension Trainer {
    /// The producer's figures for the step that took `seconds`, with `train_s`: the step's time
    /// outside generation and scoring (forward, backward, gradient sum, update).
    func producerMetrics(stepSeconds seconds: Double) -> [(String, Double)] {
        guard let m = (source as? ReportsStepMetrics)?.lastMetrics, !m.isEmpty else { return [] }
        let outside = m.filter { $0.0 == "generate_s" || $0.0 == "score_s" }.reduce(0) { $0 + $1.1 }
        return m + [("train_s", seconds - outside)]
    }

    /// " | reward 0.531" for the progress line when the producer reports a reward.
    func progressExtra(_ metrics: [(String, Double)]) -> String {
        guard let r = metrics.first(where: { $0.0 == "reward_mean" })?.1 else { return "" }
        return " | reward " + String(format: "%.3f", r)
    }
}
