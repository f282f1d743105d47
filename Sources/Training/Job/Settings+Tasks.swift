/// `make-data`'s task options (`TaskOptions` parses and checks their combination).
extension Settings {
    public static let taskKinds = Setting<String>("kinds", .nonEmpty,
        "Kinds to mix, comma-separated (\(TaskGenerator.kinds.joined(separator: ","))); default: every kind the variant has.")
    public static let taskDigits = Setting<String>("digits", .nonEmpty,
        "Operand size N or LOW-HIGH (\(TaskOptions.digitLimits.lowerBound)…\(TaskOptions.digitLimits.upperBound)): digits per number, letters per word, drawn per row; default: each kind's own sizes.")
    public static let taskVariant = Setting<String>("variant", .oneOf(TaskVariant.names),
        "Rule variant: standard, renamed (other operator words) or plus-K (add+K / mul+K add K to the result).")
    public static let templateVariant = Setting<String>("template_variant", .oneOf(TaskTemplate.allCases.map(\.rawValue)),
        "Prompt phrasing: standard (`add 2 3 =`), arrow (`add 2 3 ->`) or question (`what is add 2 3 ?`).")
    public static let noise = Setting<Double>("noise", .within(0, 1),
        "Share of completions (or answer characters, --noise-kind token) corrupted; rows record \"corrupted\".")
    public static let noiseKind = Setting<String>("noise_kind", .oneOf(TaskOptions.NoiseKind.allCases.map(\.rawValue)),
        "completion (a wrong answer of the same kind) or token (characters replaced).")
}
