/// A producer whose steps have figures of their own for the metrics row (selection: how many
/// candidates trained, the scoring pass's seconds, the selector's statistics).
public protocol ReportingProducer: StepProducer {
    /// Of the last `prepare`, the same on every rank except for timings.
    var stepDiagnostics: [(String, Double)] { get }
}
