/// The stateful components of a run, in registration order (the order `saveState` runs on
/// every rank). The trainer registers its own (`Trainer+State.swift`); anything else that
/// keeps state across steps registers itself here and is then saved, verified and restored
/// by `Checkpointer` with no further edit.
public final class StateRegistry {
    public private(set) var components: [StatefulComponent] = []
    public init() {}

    public var names: [String] { components.map(\.stateName) }

    /// Names are file names and JSON keys: lowercase letters, digits and `_`, unique.
    /// A bad or repeated name is a programming error, caught the first time the code runs.
    public func register(_ component: StatefulComponent) {
        let name = component.stateName
        precondition(Self.isValidName(name), "state name \"\(name)\": use lowercase letters, digits and _")
        precondition(!names.contains(name), "state name \"\(name)\" registered twice")
        components.append(component)
    }

    /// Lowercase ASCII letters, digits and `_`, not empty: safe as a file name and a JSON key.
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { (97...122).contains($0) || (48...57).contains($0) || $0 == 95 }
    }
}
