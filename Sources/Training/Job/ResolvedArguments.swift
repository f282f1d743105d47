/// A recipe's method arguments as the methods read them, for the resume comparison
/// (`CheckpointState.recipeDifference`): a checkpoint made with `--objective-arg alpha=10`
/// (power's default) resumes without the flag, and `ratio=0.50` is `ratio=0.5`. Each method's
/// own reader fills in its defaults (`ObjectiveRegistry.resolvedArguments`,
/// `SelectionRegistry.resolvedArguments`, `SelfTrainOptions.resolvedArguments`).
extension Recipe {
    /// `a` and `b` with their method arguments as the methods read them. A family that a
    /// method refuses on either side stays as written on both: resolving one side only
    /// refused a resume that nothing had changed (a recipe file's `self_train_args` switched
    /// off by `--self-train none` resolves only where the flag's origin is known).
    static func withResolvedArguments(_ a: Recipe, _ b: Recipe) -> (Recipe, Recipe) {
        var x = a, y = b
        func both(_ read: (Recipe) throws -> [String: String]) -> ([String: String], [String: String])? {
            guard let p = try? read(a), let q = try? read(b) else { return nil }
            return (p, q)
        }
        if let (p, q) = both({ try $0.resolvedObjectiveArguments() }) {
            x.objectiveArgs = p; y.objectiveArgs = q
        }
        if let (p, q) = both(SelectionRegistry.resolvedArguments) { x.selectionArgs = p; y.selectionArgs = q }
        if let (p, q) = both({ try $0.resolvedSelfTrainArguments() }) { x.selfTrainArgs = p; y.selfTrainArgs = q }
        return (x, y)
    }

    /// An argument whose 0 stands for a value the recipe sets is said as that value: relift's
    /// `sft_data_size` (the prompts of an RL step, `ReLIFTProducer`), prefix-rft's `decay_steps`
    /// (the run's steps, `PrefixRFTObjective.configure`).
    func resolvedObjectiveArguments() throws -> [String: String] {
        var args = try ObjectiveRegistry.resolvedArguments(name: self.objective, args: self.objectiveArgs)
        if self.objective == "relift", args["sft_data_size"] == "0" { args["sft_data_size"] = "\(self.batchSize / max(self.rollouts, 1))" }
        if self.objective == "prefix-rft", args["decay_steps"] == "0" { args["decay_steps"] = "\(max(1, self.steps))" }
        return args
    }

    /// Without self-training its arguments do nothing: none.
    func resolvedSelfTrainArguments() throws -> [String: String] {
        self.selfTrain == "none" ? [:] : try SelfTrainOptions(recipe: self).resolvedArguments
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
        let r = Recipe.withResolvedArguments(self, self).0
        var parts: [String] = []
        if self.objective != "nll" || !self.objectiveArgs.isEmpty { parts.append("objective \(self.objective)" + listed(r.objectiveArgs)) }
        if self.selection != "none" { parts.append("selection \(self.selection), pool \(self.selectionPool)" + listed(r.selectionArgs)) }
        if self.selfTrain != "none" {
            let every = self.selfTrainEvery == 1 ? "step" : "\(self.selfTrainEvery) steps"
            parts.append("self-training \(self.selfTrain) every \(every)" + listed(r.selfTrainArgs))
        }
        return parts.isEmpty ? nil : "methods: " + parts.joined(separator: "; ")
    }
}
