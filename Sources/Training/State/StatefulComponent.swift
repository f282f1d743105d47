/// Something whose state lives across optimizer steps and must be in every checkpoint for a
/// resumed run to continue exactly: the coordinator's producer, buffers, schedules, selection
/// queues, EMA / old-policy weights, adapters, the optimizer. Each declares its state once
/// here; `Checkpointer` saves, verifies and restores every registered component the same way
/// (`StateRegistry`), so a new kind of state needs no edit of the checkpoint code.
///
/// In a checkpoint, component `name` keeps its small values under `components.<name>` in
/// `state.json` and its tensors in `<name>.safetensors`.
public protocol StatefulComponent: AnyObject {
    /// Stable identifier (lowercase letters, digits, `_`): the key in `state.json` and the
    /// tensor file's name. Changing it makes older checkpoints unreadable.
    var stateName: String { get }

    /// The state to save. Called on every rank, in registration order, so it may use
    /// collectives (e.g. to gather shards); the coordinator's result is written.
    func saveState() -> ComponentState

    /// Restores what `saveState` returned after `step` optimizer steps. Called on every rank
    /// with the full state (the coordinator's copy); local, no collectives. Must validate every
    /// field it reads and throw `StateError` naming it — the manifest proves a checkpoint's
    /// integrity, not its sanity — and must not trap on any input.
    func restoreState(_ state: ComponentState, step: Int) throws
}

/// A field of a component's state that cannot be restored. The checkpointer names the file
/// it came from: `state.json` (`components.<name>.<field>`) or `<name>.safetensors`.
public struct StateError: Error, CustomStringConvertible {
    public enum Place: Sendable { case value, tensor }
    public var place: Place
    public var field: String
    public var problem: String
    public init(_ place: Place, _ field: String, _ problem: String) {
        self.place = place; self.field = field; self.problem = problem
    }
    public var description: String { "\"\(field)\" \(problem)" }
}
