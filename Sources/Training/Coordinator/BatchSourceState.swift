/// A producer's words (`StepProducer.state`, e.g. the uniform sampler's seed) as a stateful
/// component. A producer with richer state (tensors, buffers) conforms to `StatefulComponent`
/// itself and is registered as it is instead (`Trainer+State.swift`).
final class BatchSourceState: StatefulComponent {
    let stateName = "batch_source"
    let producer: StepProducer
    init(_ producer: StepProducer) { self.producer = producer }

    func saveState() -> ComponentState { ComponentState(values: ["words": .words(producer.state)]) }

    func restoreState(_ state: ComponentState, step: Int) throws {
        let words = try state.words("words")
        do { try producer.restore(words) } catch let e as StateError { throw e } catch {
            throw StateError(.value, "words", "cannot be restored (\(error))")
        }
    }
}
