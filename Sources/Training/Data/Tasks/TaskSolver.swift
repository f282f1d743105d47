/// The one solver of the built-in tasks: generation writes its answers and evaluation (the
/// `task` scorer, rewards) checks against it, so the two cannot disagree.
extension TaskGenerator {
    /// Operands of `add`/`mul` are below 10⁹, so a product fits an `Int` with room to spare.
    static let operandLimit = 1_000_000_000

    /// The correct completion for a built-in task prompt (any variant, any phrasing),
    /// recomputed from the prompt text alone, or nil if it is not one of these tasks.
    /// Rewards and exact-match evaluation can use it to check a model's answer to a prompt it
    /// has never seen.
    public static func expectedCompletion(forPrompt prompt: String) -> String? {
        for template in TaskTemplate.allCases {
            if let task = template.unwrap(prompt), let answer = solve(task: task) { return answer }
        }
        return nil
    }

    /// `task` is the prompt without its phrasing: an operator word and its arguments.
    private static func solve(task: String) -> String? {
        let parts = task.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2, let rule = TaskVariant.rule(ofOperator: parts[0]) else { return nil }
        let args = Array(parts[1...])
        func isLowercaseWord(_ s: String) -> Bool {
            !s.isEmpty && s.unicodeScalars.allSatisfy { $0.value >= 97 && $0.value <= 122 }
        }
        func number(_ s: String) -> Int? {
            guard !s.isEmpty, s.utf8.count <= 9, s.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
            return Int(s)
        }
        let offset: Int
        if case .plus(let k) = rule.variant { offset = k } else { offset = 0 }
        switch (rule.kind, args.count) {
        case ("add", 2), ("mul", 2):
            guard let a = number(args[0]), let b = number(args[1]) else { return nil }
            return " \((rule.kind == "add" ? a + b : a * b) + offset)"
        case ("reverse", 1) where isLowercaseWord(args[0]):
            return " " + String(args[0].reversed())
        case ("copy", 1) where isLowercaseWord(args[0]):
            return " " + args[0]
        case ("repeat", 2) where isLowercaseWord(args[0]):
            guard let times = Int(args[1]), (1...9).contains(times) else { return nil }
            return " " + String(repeating: args[0], count: times)
        case ("sort", 1) where !args[0].isEmpty && args[0].allSatisfy(\.isASCII) && args[0].allSatisfy(\.isNumber):
            return " " + String(args[0].sorted())
        case ("upper", 1) where isLowercaseWord(args[0]):
            return " " + args[0].uppercased()
        default:
            return nil
        }
    }
}
