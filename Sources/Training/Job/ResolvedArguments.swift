import Models

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
        let a = a.withoutUnreadRatio, b = b.withoutUnreadRatio
        var x = a, y = b
        func both<T>(_ read: (Recipe) throws -> T) -> (T, T)? {
            guard let p = try? read(a), let q = try? read(b) else { return nil }
            return (p, q)
        }
        if let (p, q) = both({ try $0.resolvedObjectiveArguments() }) {
            x.objectiveArgs = p; y.objectiveArgs = q
        }
        if let (p, q) = both(SelectionRegistry.resolvedArguments) { x.selectionArgs = p; y.selectionArgs = q }
        if let (p, q) = both({ try $0.resolvedSelfTrainArguments() }) { x.selfTrainArgs = p; y.selfTrainArgs = q }
        if let (p, q) = both({ try $0.resolvedRewards() }) {
            (x.rewards, x.rewardArgs) = p; (y.rewards, y.rewardArgs) = q
        }
        // online-dpo runs 2 rollouts per prompt whatever `rollouts` says (any other value given is
        // refused at start): a checkpoint's recipe holds the default 8, the run's recipe.yaml 2.
        if let g = x.objectiveRolloutsPerPrompt { x.rollouts = g }
        if let g = y.objectiveRolloutsPerPrompt { y.rollouts = g }
        return (x, y)
    }

    /// ssr and s3ft never read `ratio`, refused when given since 2026-12-08: a checkpoint's recipe
    /// from before that holds one compares without it.
    var withoutUnreadRatio: Recipe {
        guard ["ssr", "s3ft"].contains(self.selfTrain), self.selfTrainArgs["ratio"] != nil else { return self }
        var r = self
        r.selfTrainArgs["ratio"] = nil
        return r
    }

    /// The rollouts per prompt the objective fixes (online-dpo's pair: 2); nil otherwise.
    var objectiveRolloutsPerPrompt: Int? {
        (try? ObjectiveRegistry.make(name: self.objective, args: self.objectiveArgs))?.requirements.rolloutsPerPrompt
    }
    /// That count when `rollouts` is unset, which the run then uses.
    var fixedRolloutsPerPrompt: Int? { isSet(Recipe.declared.rollouts.name) ? nil : objectiveRolloutsPerPrompt }

    /// `rewards` as NAME=WEIGHT (`task` is `task=1.0`) and `reward_args` as NAME.key=value with
    /// every argument the scorers read, defaults included (`RewardFunction.makeReading`);
    /// the self-training scorer's too when it is not among the rewards.
    func resolvedRewards() throws -> (rewards: [String], args: [String: String]) {
        // The self-training scorer's arguments, when it is no reward function, as SelfTrainScoring reads them.
        let names = Set(self.rewards.compactMap { RewardFunction.parse($0)?.name })
        let scorer = self.selfTrain == "none" ? nil : self.selfTrainScorer.flatMap { names.contains($0) ? nil : $0 }
        let scorerArgs = scorer.map { name in self.rewardArgs.filter { $0.key.hasPrefix(name + ".") } } ?? [:]
        var args: [String: String] = [:]
        let functions = try RewardFunction.makeReading(specs: self.rewards, args: self.rewardArgs.filter { scorerArgs[$0.key] == nil })
        for (f, read) in functions { for (k, v) in read { args["\(f.name).\(k)"] = v } }
        if let scorer {
            for (k, v) in try RewardFunction.makeReading(specs: [scorer], args: scorerArgs)[0].read { args["\(scorer).\(k)"] = v }
        }
        return (functions.map { "\($0.function.name)=\($0.function.weight)" }, args)
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
    /// epsilon=0.2, loss_type=dapo); rewards task=1; selection uds, pool 4 (alpha=0.0025, …)`.
    /// nil for plain nll.
    var methodsLine: String? {
        func listed(_ args: [String: String]) -> String {
            // 0.0 as 0; a regex pattern's newline or an escape sequence as a JSON string.
            func shown(_ v: String) -> String { v.hasSuffix(".0") && Double(v) != nil ? String(v.dropLast(2)) : JSONText.plain(v) }
            return args.isEmpty ? "" : " (" + args.sorted { $0.key < $1.key }.map { "\($0.key)=\(shown($0.value))" }.joined(separator: ", ") + ")"
        }
        let r = Recipe.withResolvedArguments(self, self).0
        var parts: [String] = []
        // With the defaults an objective keeps out of its resolved arguments (dpo's loss_type …).
        let shown = (try? ObjectiveRegistry.shownArguments(name: self.objective, args: self.objectiveArgs))
            .map { s in r.objectiveArgs.merging(s) { mine, _ in mine } } ?? r.objectiveArgs
        if self.objective != "nll" || !self.objectiveArgs.isEmpty { parts.append("objective \(self.objective)" + listed(shown)) }
        if !self.rewards.isEmpty, let (rewards, args) = try? self.resolvedRewards() {
            parts.append("rewards " + rewards.map { spec in spec.hasSuffix(".0") ? String(spec.dropLast(2)) : spec }.joined(separator: ", ") + listed(args))
        }
        if self.selection != "none" { parts.append("selection \(self.selection), pool \(self.selectionPool)" + listed(r.selectionArgs)) }
        if self.selfTrain != "none" {
            let every = self.selfTrainEvery == 1 ? "step" : "\(self.selfTrainEvery) steps"
            parts.append("self-training \(self.selfTrain) every \(every)" + listed(r.selfTrainArgs))
        }
        return parts.isEmpty ? nil : "methods: " + parts.joined(separator: "; ")
    }
}
