/// The optimizer as a stateful component: each array of `Optimizer.state` (AdamW: m, v, t)
/// is a tensor of `optimizer.safetensors`.
final class OptimizerState: StatefulComponent {
    let stateName = "optimizer"
    let optimizer: Optimizer
    init(_ optimizer: Optimizer) { self.optimizer = optimizer }

    func saveState() -> ComponentState {
        ComponentState(tensors: optimizer.state.mapValues { StateTensor($0) })
    }

    func restoreState(_ state: ComponentState, step: Int) throws {
        try state.expectTensors(optimizer.stateKeys)
        try optimizer.restore(state.tensors.mapValues(\.values))
        // AdamW's bias correction reads t: more updates than the steps done is a hand-made
        // or mismatched file (fewer is not: skipped steps do not update).
        if let t = state.tensors["t"]?.values.first, Int(t) > step {
            throw StateError(.tensor, "t", "is \(Int(t)), more than the \(step) steps done")
        }
    }
}

/// `state[key]` for `Optimizer.restore`: present, `count` values, all finite (and ≥ 0 for
/// second moments); otherwise an error naming the key.
func restoredArray(_ state: [String: [Float]], _ key: String, count: Int, nonNegative: Bool = false) throws -> [Float] {
    guard let a = state[key] else { throw StateError(.tensor, key, "is missing") }
    guard a.count == count else { throw StateError(.tensor, key, "has \(a.count) values, this model needs \(count)") }
    if let i = a.firstIndex(where: { !$0.isFinite || (nonNegative && $0 < 0) }) {
        throw StateError(.tensor, key, "holds \(a[i]) at index \(i) (\(nonNegative ? "must be finite and ≥ 0" : "must be finite"))")
    }
    return a
}

/// `state["t"]`: AdamW's step count, one integral value.
func restoredStepCount(_ state: [String: [Float]]) throws -> Int {
    let t = try restoredArray(state, "t", count: 1)[0]
    // Float holds every integer up to 2^24 exactly; a step count beyond that was never written.
    guard t >= 0, t <= 16_777_216, t == t.rounded() else {
        throw StateError(.tensor, "t", "is \(t), not a step count (an integer in 0...16777216)")
    }
    return Int(t)
}
