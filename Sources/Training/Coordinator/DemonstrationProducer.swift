/// The plain SFT producer: the coordinator's `BatchSource` (uniform sampling by default)
/// picks training-set rows, and they train as they are, as demonstrations.
public final class DemonstrationProducer: StepProducer {
    public let name = "demonstrations"
    public let source: BatchSource
    public init(source: BatchSource) { self.source = source }

    public func prepare(_ p: StepPreparation) -> StepBatch {
        p.decide {
            StepBatch(step: p.step, sequences: source.batch(step: p.step).map {
                StepSequence(demonstration: p.examples[$0], index: $0)
            })
        }
    }

    public var state: [UInt64] { source.state }
    public func restore(_ state: [UInt64]) throws { try source.restore(state) }
}
