/// What `make-data` generates: which skills, how hard, under which rule and phrasing, how much
/// noise, with or without answers. The default value gives the embedded default dataset.
public struct TaskOptions: Equatable, Sendable {
    /// How `noise` corrupts a row.
    public enum NoiseKind: String, CaseIterable, Sendable {
        /// The whole completion is replaced by a wrong answer of the same kind (the answer to
        /// another prompt of that kind and size): a plausible but wrong example.
        case completion
        /// Each answer character (a token of the byte-level tokenizer) is replaced, with
        /// probability `noise`, by another of its class (digit, lower- or upper-case letter).
        case token
    }

    /// Kinds to mix uniformly, in this order; nil: every kind the variant has.
    public var kinds: [String]?
    /// Operand size per row, drawn uniformly: digits of each number, letters of each word
    /// (`sort`: digits of its string). nil: each kind's default size (the embedded set's).
    public var digits: ClosedRange<Int>?
    public var variant: TaskVariant = .standard
    public var template: TaskTemplate = .standard
    /// Share of completions (or answer characters, with `.token`) corrupted.
    public var noise: Double = 0
    public var noiseKind: NoiseKind = .completion
    /// Rows with a prompt and no completion (self-training's unlabelled prompts).
    public var unlabelled = false

    public init() {}

    /// Sizes `--digits` accepts: 9-digit operands keep a product below 10¹⁸.
    public static let digitLimits = 1...9

    public var resolvedKinds: [String] { kinds ?? variant.kinds }

    /// The default options write the original two-field rows; any option given adds the
    /// per-row measurement fields (`kind`, `digits`, …), even one that changes no row.
    public var isDefault: Bool {
        kinds == nil && digits == nil && variant == .standard
            && template == .standard && noise == 0 && !unlabelled
    }

    /// Options from `make-data`'s flags as typed; every refusal names its flag.
    public static func parse(kinds: String?, digits: String?, variant: String, template: String,
                             noise: Double, noiseKind: String, unlabelled: Bool) throws -> TaskOptions {
        var options = TaskOptions()
        try Settings.taskVariant.check(variant)
        try Settings.templateVariant.check(template)
        try Settings.noiseKind.check(noiseKind)
        try Settings.noise.check(noise)
        options.variant = TaskVariant(name: variant)!
        options.template = TaskTemplate(rawValue: template)!
        options.noiseKind = NoiseKind(rawValue: noiseKind)!
        options.noise = noise
        if unlabelled && noise > 0 {
            throw RecipeError("--noise: unlabelled rows have no completion to corrupt (drop --noise or --unlabelled)")
        }
        options.unlabelled = unlabelled
        if let kinds { options.kinds = try parseKinds(kinds, variant: options.variant) }
        if let digits { options.digits = try parseDigits(digits) }
        return options
    }

    static func parseKinds(_ text: String, variant: TaskVariant) throws -> [String] {
        let names = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        var seen = Set<String>()
        for name in names {
            if name.isEmpty {
                throw RecipeError(text.isEmpty ? "--kinds: empty; give kinds separated by commas (known: \(TaskGenerator.kinds.joined(separator: ", ")))"
                                               : "--kinds: empty name in \"\(RecipeError.quote(text))\"")
            }
            guard TaskGenerator.kinds.contains(name) else {
                throw RecipeError("--kinds: unknown kind \(RecipeError.quote(name)); known: \(TaskGenerator.kinds.joined(separator: ", "))")
            }
            guard variant.kinds.contains(name) else {
                throw RecipeError("--kinds: variant \(variant.name) has no rule for \(name) (it has \(variant.kinds.joined(separator: ", ")))")
            }
            guard seen.insert(name).inserted else { throw RecipeError("--kinds: \(name) given twice") }
        }
        return names
    }

    /// `3` or `1-2`.
    static func parseDigits(_ text: String) throws -> ClosedRange<Int> {
        let ends = text.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false).map { Int($0) }
        let limits = digitLimits
        guard ends.count <= 2, let low = ends.first ?? nil, let high = ends.last ?? nil,
              limits.contains(low), limits.contains(high), low <= high else {
            throw RecipeError("--digits must be N or LOW-HIGH with \(limits.lowerBound) ≤ LOW ≤ HIGH ≤ \(limits.upperBound) (got \(RecipeError.quote(text)))")
        }
        return low...high
    }
}
