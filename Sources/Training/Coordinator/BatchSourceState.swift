/// A `BatchSource`'s words (`BatchSource.state`) as a stateful component. A producer with
/// richer state (tensors, buffers) conforms to `StatefulComponent` itself and is registered
/// as it is instead (`Trainer+State.swift`).
final class BatchSourceState: StatefulComponent {
    let stateName = "batch_source"
    let source: BatchSource
    init(_ source: BatchSource) { self.source = source }

    func saveState() -> ComponentState { ComponentState(values: ["words": .words(source.state)]) }

    func restoreState(_ state: ComponentState, step: Int) throws {
        let words = try state.words("words")
        do { try source.restore(words) } catch let e as StateError { throw e } catch {
            throw StateError(.value, "words", "cannot be restored (\(error))")
        }
    }
}
