/// A flag that replaces the recipe file's method also replaces that method's arguments:
/// `--objective asft` over a recipe with `objective: dft` and `objective_args: {…}` trains
/// asft, and the file's arguments — written for dft — are not passed to it (they were, and
/// the run was refused for arguments the user never gave asft). The same holds for
/// `selection` / `selection_args` and `self_train` / `self_train_args`. A flag's own
/// `--objective-args` etc. still apply; the same method named again keeps the file's.
extension Recipe {
    /// Each method key with the arguments key that belongs to it.
    static let methodArguments: [(method: RecipeKey<String>, arguments: RecipeKey<[String: String]>)] = [
        (declared.objective, declared.objectiveArgs),
        (declared.selection, declared.selectionArgs),
        (declared.selfTrain, declared.selfTrainArgs),
    ]

    /// Called on the file's recipe before the flags apply, with the method flags given
    /// (key name → value): drops the file's arguments of every method a flag replaces, and
    /// leaves a note for the run's log naming the line.
    public mutating func dropArgumentsOfReplacedMethods(flags: [String: String]) {
        for (method, arguments) in Recipe.methodArguments {
            // Only a method the file itself chose: arguments under the default method (no
            // `objective:` line) are the user's arguments for whatever the flag names.
            guard let replacement = flags[method.name], replacement != self[method], origins[method.name] != nil,
                  let line = origins[arguments.name], !self[arguments].isEmpty else { continue }
            notes.append("\(line): \(arguments.name) not used: they are \(self[method])'s, and --\(method.flag) \(replacement) replaces it")
            self[arguments] = arguments.defaultValue
            origins[arguments.name] = nil
        }
    }
}
