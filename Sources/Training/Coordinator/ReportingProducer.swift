/// A producer whose steps have figures of their own for the metrics row (rollouts: rewards,
/// completion lengths, the generate / score time; selection: how many candidates trained, the
/// scoring pass's seconds, the selector's statistics; self-training: a round's outcome).
public protocol ReportingProducer: StepProducer {
    /// Of the last `prepare` (numbers or strings), the same on every rank except for timings.
    var stepFields: [(String, Any)] { get }
}
