/// A producer whose steps have figures of their own for the metrics row (selection: how many
/// candidates trained and which, the scoring pass's seconds, the selector's statistics).
public protocol ReportingProducer: StepProducer {
    /// Of the last `prepare` (numbers or strings), the same on every rank except for timings.
    var stepFields: [(String, Any)] { get }
}
