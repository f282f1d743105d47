/// Objectives by name, with their `--objective-arg key=value` parameters.
/// One line per method; each method lives in its own file.
public enum ObjectiveRegistry {
    public static let names = ["nll"]

    public static func make(name: String, args: [String: String]) throws -> Objective {
        var args = ObjectiveArgs(objective: name, values: args)
        let objective: Objective
        switch name {
        case "nll": objective = try NLLObjective(labelSmoothing: try args.float("label_smoothing", default: 0))
        default:
            throw ObjectiveError("unknown objective \"\(name)\"; known: \(names.joined(separator: ", "))")
        }
        try args.finish()
        return objective
    }
}

/// Typed access to `key=value` objective arguments; `finish()` rejects keys nobody read.
public struct ObjectiveArgs {
    let objective: String
    var values: [String: String]
    var used: Set<String> = []
    public init(objective: String, values: [String: String]) { self.objective = objective; self.values = values }

    public mutating func float(_ key: String, default d: Float) throws -> Float {
        used.insert(key)
        guard let s = values[key] else { return d }
        guard let v = Float(s), v.isFinite else {
            throw ObjectiveError("objective \(objective): \(key)=\(s) is not a number")
        }
        return v
    }
    public mutating func int(_ key: String, default d: Int) throws -> Int {
        used.insert(key)
        guard let s = values[key] else { return d }
        guard let v = Int(s) else { throw ObjectiveError("objective \(objective): \(key)=\(s) is not an integer") }
        return v
    }
    public mutating func string(_ key: String, default d: String) -> String {
        used.insert(key)
        return values[key] ?? d
    }
    public func finish() throws {
        let unknown = Set(values.keys).subtracting(used).sorted()
        if !unknown.isEmpty {
            throw ObjectiveError("objective \(objective): unknown argument(s) \(unknown.joined(separator: ", ")); accepted: \(used.sorted().joined(separator: ", "))")
        }
    }
}
