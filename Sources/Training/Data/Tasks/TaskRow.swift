import Models

/// One generated row: the example and what it is, for measurement. Training reads only
/// `prompt` and `completion` (`JSONLReader` ignores the other fields).
public struct TaskRow: Equatable, Sendable {
    public var prompt: String
    /// nil for an unlabelled row.
    public var completion: String?
    public var kind: String
    /// Longest operand: digits of a number, letters of a word (not `repeat`'s count).
    public var digits: Int
    public var variant: TaskVariant
    public var template: TaskTemplate
    /// Whether noise made the completion wrong; nil when no noise was asked for.
    public var corrupted: Bool?
    /// Answer characters replaced by `--noise-kind token`; nil for other noise kinds.
    public var corruptedTokens: Int?

    /// `{"prompt":…,"completion":…}`, then, with `measurement`, the fields that say what the
    /// row is (`kind`, `digits`, `variant`, `template`, and `corrupted` when noise was asked for).
    public func jsonLine(measurement: Bool) -> String {
        var fields = [("prompt", JSONText.quote(prompt))]
        if let completion { fields.append(("completion", JSONText.quote(completion))) }
        if measurement {
            fields += [("kind", JSONText.quote(kind)), ("digits", "\(digits)"),
                       ("variant", JSONText.quote(variant.name)), ("template", JSONText.quote(template.rawValue))]
            if let corrupted { fields.append(("corrupted", corrupted ? "true" : "false")) }
            if let corruptedTokens { fields.append(("corrupted_tokens", "\(corruptedTokens)")) }
        }
        return "{" + fields.map { "\(JSONText.quote($0.0)):\($0.1)" }.joined(separator: ",") + "}"
    }
}
