/// A recipe's method arguments as the methods read them, for the resume comparison
/// (`CheckpointState.recipeDifference`): a checkpoint made with `--objective-arg alpha=10`
/// (power's default) resumes without the flag, and `ratio=0.50` is `ratio=0.5`. Each method's
/// own reader fills in its defaults (`ObjectiveRegistry.resolvedArguments`,
/// `SelectionRegistry.resolvedArguments`, `SelfTrainOptions.resolvedArguments`); arguments a
/// method refuses stay as written, and are compared as written.
extension Recipe {
    var withResolvedArguments: Recipe {
        var r = self
        if let a = try? ObjectiveRegistry.resolvedArguments(name: self.objective, args: self.objectiveArgs) { r.objectiveArgs = a }
        if let a = try? SelectionRegistry.resolvedArguments(self) { r.selectionArgs = a }
        if let o = try? SelfTrainOptions(recipe: self) { r.selfTrainArgs = o.resolvedArguments }
        return r
    }
}

extension Recipe {
    /// The start-up line naming each method at work with every argument it reads, defaults
    /// included (recipe.yaml keeps only those given): `methods: objective grpo (beta=0,
    /// epsilon=0.2, loss_type=dapo); selection uds, pool 4 (alpha=0.0025, …)`. nil for plain nll.
    var methodsLine: String? {
        func listed(_ args: [String: String]) -> String {
            func shown(_ v: String) -> String { v.hasSuffix(".0") && Double(v) != nil ? String(v.dropLast(2)) : v }   // 0.0 as 0
            return args.isEmpty ? "" : " (" + args.sorted { $0.key < $1.key }.map { "\($0.key)=\(shown($0.value))" }.joined(separator: ", ") + ")"
        }
        let r = withResolvedArguments
        var parts: [String] = []
        if self.objective != "nll" || !self.objectiveArgs.isEmpty { parts.append("objective \(self.objective)" + listed(r.objectiveArgs)) }
        if self.selection != "none" { parts.append("selection \(self.selection), pool \(self.selectionPool)" + listed(r.selectionArgs)) }
        if self.selfTrain != "none" {
            parts.append("self-training \(self.selfTrain) every \(self.selfTrainEvery) steps" + listed(r.selfTrainArgs))
        }
        return parts.isEmpty ? nil : "methods: " + parts.joined(separator: "; ")
    }
}
