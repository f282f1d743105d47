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
