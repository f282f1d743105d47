/// How a built-in task's operator is spelled and what it means: the rule variants.
///
/// A variant is always visible in the prompt (its operator is spelled differently), so the
/// answer is a function of the prompt text alone: the solver, the reward and exact-match
/// evaluation need nothing but the prompt, and a model can in principle read the rule. This is
/// the setting of "SFT Memorizes, RL Generalizes" (arXiv 2501.17161, §4: rule variants of a
/// task, stated in the prompt, with a held-out set on a variant not seen in training).
public enum TaskVariant: Hashable, Sendable {
    /// The rules in the `TaskGenerator` table.
    case standard
    /// Every operator under another name with the same meaning (`sum 23 45 =` is `add`).
    case renamed
    /// `add+K a b` is a + b + K and `mul+K a b` is a · b + K, for K in 1…9.
    case plus(Int)

    public static let all: [TaskVariant] = [.standard, .renamed] + (1...9).map { .plus($0) }
    public static var names: [String] { all.map(\.name) }

    public init?(name: String) {
        guard let found = Self.all.first(where: { $0.name == name }) else { return nil }
        self = found
    }

    public var name: String {
        switch self {
        case .standard: return "standard"
        case .renamed: return "renamed"
        case .plus(let k): return "plus-\(k)"
        }
    }

    /// The kinds whose prompts this variant can spell (the others have no such rule).
    public var kinds: [String] {
        switch self {
        case .standard, .renamed: return TaskGenerator.kinds
        case .plus: return ["add", "mul"]
        }
    }

    static let renamedOperators = ["add": "sum", "mul": "prod", "reverse": "flip", "copy": "echo",
                                   "repeat": "tile", "sort": "order", "upper": "caps"]

    /// The operator word of `kind` under this variant (`kind` must be one of `kinds`).
    public func operatorName(of kind: String) -> String {
        switch self {
        case .standard: return kind
        case .renamed: return Self.renamedOperators[kind] ?? kind
        case .plus(let k): return "\(kind)+\(k)"
        }
    }

    /// The (kind, variant) an operator word stands for, or nil if no variant spells it.
    static func rule(ofOperator word: String) -> (kind: String, variant: TaskVariant)? {
        for variant in all {
            if let kind = variant.kinds.first(where: { variant.operatorName(of: $0) == word }) {
                return (kind, variant)
            }
        }
        return nil
    }
}

/// The phrasing around a task (`--template-variant`), so a claim can be checked under a changed
/// prompt: the same task and answer, other words around it.
public enum TaskTemplate: String, CaseIterable, Sendable {
    /// `add 23 45 =`
    case standard
    /// `add 23 45 ->`
    case arrow
    /// `what is add 23 45 ?`
    case question

    var prefix: String { self == .question ? "what is " : "" }
    var suffix: String {
        switch self {
        case .standard: return " ="
        case .arrow: return " ->"
        case .question: return " ?"
        }
    }

    func wrap(_ task: String) -> String { prefix + task + suffix }

    /// The task text inside a prompt of this phrasing, or nil if the prompt is not one.
    func unwrap(_ prompt: String) -> String? {
        guard prompt.hasPrefix(prefix), prompt.hasSuffix(suffix),
              prompt.utf8.count > prefix.utf8.count + suffix.utf8.count else { return nil }
        return String(prompt.dropFirst(prefix.count).dropLast(suffix.count))
    }
}
