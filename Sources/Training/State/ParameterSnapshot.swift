import TensorCore

/// A set of weights kept beside the trained model (an old-policy snapshot, an EMA of the
/// weights, adapters) as a stateful component: one tensor per parameter, by its checkpoint
/// name and shape, so `<name>.safetensors` is also readable as weights.
public final class ParameterSnapshot: StatefulComponent {
    public let stateName: String
    let parameters: ParameterStore
    public init(_ name: String, parameters: ParameterStore) { stateName = name; self.parameters = parameters }

    public func saveState() -> ComponentState {
        var tensors: [String: StateTensor] = [:]
        for e in parameters.entries {
            tensors[e.name] = StateTensor(shape: e.shape, values: Array(UnsafeBufferPointer(start: parameters.values + e.offset, count: e.count)))
        }
        return ComponentState(tensors: tensors)
    }

    public func restoreState(_ state: ComponentState, step: Int) throws {
        try state.expectTensors(Set(parameters.entries.map(\.name)))
        for e in parameters.entries {
            guard state.tensors[e.name]?.shape == e.shape else {
                throw StateError(.tensor, e.name, "has shape \(state.tensors[e.name]?.shape ?? []), this model needs \(e.shape)")
            }
            let v = try state.tensor(e.name, count: e.count)
            if e.count > 0 { v.withUnsafeBufferPointer { (parameters.values + e.offset).update(from: $0.baseAddress!, count: e.count) } }
        }
    }
}
