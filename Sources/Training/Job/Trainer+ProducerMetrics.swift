import Foundation

extension Trainer {
    /// The producer's figures for the step that took `seconds`, with `train_s` when it
    /// generated or scored: the step's time outside generation and scoring (forward, backward,
    /// gradient sum, update).
    func producerMetrics(stepSeconds seconds: Double) -> [(String, Any)] {
        guard let fields = (source as? ReportingProducer)?.stepFields, !fields.isEmpty else { return [] }
        let timed = fields.filter { $0.0 == "generate_s" || $0.0 == "score_s" }.compactMap { $0.1 as? Double }
        return timed.isEmpty ? fields : fields + [("train_s", seconds - timed.reduce(0, +))]
    }

    /// " | reward 0.531" for the progress line when the producer reports a reward.
    func progressExtra(_ metrics: [(String, Any)]) -> String {
        guard let r = metrics.first(where: { $0.0 == "reward" })?.1 as? Double else { return "" }
        return " | reward " + String(format: "%.3f", r)
    }
}
