import Foundation
import Models
import Yams

extension Node {
    /// YAML null (`~`, `null`, nothing) — only unquoted: `'~'` is the string "~" (Yams' own
    /// `null` accessor ignores the quotes).
    var isNull: Bool {
        guard let s = scalar, s.style == .plain || s.style == .any else { return false }
        return null != nil
    }
}

/// A type a recipe key can hold: how it is read from a YAML node (Yams' YAML 1.1 scalar
/// resolution) and from a flag's text, and how it reads in messages and in the resume check.
public protocol RecipeValue: Codable, Equatable, Sendable {
    /// nil: the node is not a value of this type.
    static func fromYAML(_ node: Node) -> Self?
    /// nil: the text is not a value of this type. `current` is the value so far, so a
    /// repeatable flag (`--objective-arg k=v`) adds to it instead of replacing it.
    static func fromFlag(_ text: String, current: Self?) -> Self?
    /// A repeatable flag's values together with the recipe file's value: the flags read
    /// from `start` (one after another, `fromFlag`), then `joined`. By default they start
    /// from the file's value and add to it (`--objective-arg`).
    static func flagsStart(file: Self) -> Self
    static func joined(flags: Self, file: Self) -> Self
    /// Why `fromFlag` refused `text`, when the limits' general description would not say
    /// (`--eval-data add=b.jsonl` after `add=a.jsonl`: the name twice); nil: the limits say it.
    static func refusal(flag text: String, current: Self?) -> String?
    /// How a recipe writes the value, where that differs from the flag's form the limits
    /// describe (`eval_data` is a mapping in YAML, `NAME=FILE` as a flag); nil: the same.
    static var yamlForm: String? { get }
    /// What, inside a YAML value of the right kind, `fromYAML` refused (`objective_args:
    /// {alpha: [1, 2]}`: "a sequence for alpha"), where "(got a mapping)" would not say; nil: the kind says it.
    static func yamlShapeRefused(_ node: Node) -> String?
    /// The value as messages and the resume comparison show it.
    var text: String { get }
    /// The value in `recipe.yaml`, reading back exactly (numbers in their shortest exact form).
    var yaml: Node { get }
}

extension RecipeValue {
    public static func flagsStart(file: Self) -> Self { file }
    public static func joined(flags: Self, file: Self) -> Self { flags }
    public static func refusal(flag text: String, current: Self?) -> String? { nil }
    public static var yamlForm: String? { nil }
    public static func yamlShapeRefused(_ node: Node) -> String? { nil }
}

extension RecipeValue where Self: LosslessStringConvertible {
    public static func fromFlag(_ text: String, current: Self?) -> Self? { Self(text) }
    public var text: String { description }
    public var yaml: Node { Node(description) }
}

extension Node {
    /// A number's text: a plain scalar, untagged or tagged int or float. Numbers are read
    /// from it as flags read theirs (`Int("010")` is 10), not by YAML 1.1's resolution, which
    /// read `steps: 010` as 8 (octal), `0x10` as 16, `1_0.5` as 10.5 and `!custom 1` as 1.
    var numberText: String? {
        guard let s = scalar, s.style == .plain || s.style == .any else { return nil }
        let t = tag.description
        guard t.isEmpty || t == "tag:yaml.org,2002:int" || t == "tag:yaml.org,2002:float" else { return nil }
        return s.string
    }

    /// For a number refused for its tag (`lr: !custom 0.001`, `steps: !!str 7`), what to say
    /// instead of "(got 0.001)", which reads as a number in range. Text that is no number
    /// (`steps: abc`, resolved as a string) says enough itself.
    var numberTagRefused: String? {
        guard let s = scalar, s.style == .plain || s.style == .any, numberText == nil, Double(s.string) != nil else { return nil }
        return "\(RecipeError.quote(s.string)) with the tag \(tag.description)"
    }
}

extension Int: RecipeValue {
    public static func fromYAML(_ node: Node) -> Int? { node.numberText.flatMap { Int($0) } }
    public static func yamlShapeRefused(_ node: Node) -> String? { node.numberTagRefused }
}

extension UInt64: RecipeValue {
    public static func fromYAML(_ node: Node) -> UInt64? { node.numberText.flatMap { UInt64($0) } }
    public static func yamlShapeRefused(_ node: Node) -> String? { node.numberTagRefused }
}

extension Double: RecipeValue {
    public static func fromYAML(_ node: Node) -> Double? { node.numberText.flatMap(Double.init(decimal:)) }
    public static func fromFlag(_ text: String, current: Double?) -> Double? { Double(decimal: text) }

    /// A decimal number (or inf/nan, which the limits then name): Swift's `Double("0x10")` is
    /// 16 and `Double("0x1p-9")` 0.00195, so `--lr 0x10` trained at lr 16, where integer keys
    /// and the README refuse hexadecimal. A NUL is refused too: `Double("0.75\0x")` reads the
    /// text up to it, 0.75 (an external scorer's line "0.75\0garbage" scored 0.75).
    public init?(decimal text: String) {
        guard !text.contains(where: { $0 == "x" || $0 == "X" || $0 == "\0" }), let v = Double(text) else { return nil }
        self = v
    }
    public static func yamlShapeRefused(_ node: Node) -> String? { node.numberTagRefused }
}

extension Bool: RecipeValue {
    public static func fromYAML(_ node: Node) -> Bool? { node.scalar.flatMap(Bool.construct) }
}

extension String: RecipeValue {
    /// Any scalar but null: `model: 123` is the string "123", as YAMLDecoder read it.
    /// A NUL is refused: every string key is a path, a name or a pattern, and the system cuts
    /// a path at its NUL (`data: "a.jsonl\0x"` trained on a.jsonl).
    public static func fromYAML(_ node: Node) -> String? {
        guard let s = node.scalar, !node.isNull, !s.string.unicodeScalars.contains("\0") else { return nil }
        return s.string
    }
    public static func yamlShapeRefused(_ node: Node) -> String? {
        node.scalar.map(\.string).flatMap { $0.unicodeScalars.contains("\0") ? "a string holding a NUL character (\\0)" : nil }
    }
    public var text: String { "\"\(RecipeError.quote(self))\"" }
    /// Quoted when it would read back as something else (`"~"`, `"123"`), as Yams decides.
    public var yaml: Node { .scalar(represented()) }
}

/// Optional keys (`heldout`, `ref_model`, `resume`): YAML null, or a value.
extension Optional: RecipeValue where Wrapped: RecipeValue {
    public static func fromYAML(_ node: Node) -> Wrapped?? {
        if node.isNull { return .some(nil) }
        return Wrapped.fromYAML(node).map { .some($0) }
    }
    public static func fromFlag(_ text: String, current: Wrapped??) -> Wrapped?? {
        Wrapped.fromFlag(text, current: current ?? nil).map { .some($0) }
    }
    public var text: String { map(\.text) ?? "unset" }
    public var yaml: Node { map(\.yaml) ?? Node("null") }
    public static func yamlShapeRefused(_ node: Node) -> String? { Wrapped.yamlShapeRefused(node) }
}

/// `objective_args`: a flat mapping of names to scalar values, kept as the text written (an
/// objective parses its own arguments); under the names that take a list (`listKeys`: dpo's
/// `loss_type: [sigmoid, sft]`, TRL's form) a list of scalars is kept as its items joined by
/// commas, as a flag gives it — in any key=value setting, where the method reading the joined
/// text decides (grpo's loss_type takes one name, so `[dapo]` reads as dapo); from flags,
/// `key=value`, repeatable.
extension Dictionary: RecipeValue where Key == String, Value == String {
    /// The argument names that read a comma-separated list (a list elsewhere is refused: a
    /// regex pattern given as a list was read as the items joined by a comma).
    static var listKeys: Set<String> { ["loss_type", "loss_weights"] }

    public static func fromYAML(_ node: Node) -> [String: String]? {
        guard let m = node.mapping else { return node.isNull ? [:] : nil }
        var out: [String: String] = [:]
        for (k, v) in m {
            guard let key = k.scalar?.string, let value = valueText(v, key: key) else { return nil }
            out[key] = value
        }
        return out
    }
    static func valueText(_ node: Node, key: String) -> String? {
        listKeys.contains(key) ? scalarText(node) : node.scalar?.string
    }
    /// A scalar's text, or a non-empty list of scalars' texts joined by commas.
    static func scalarText(_ node: Node) -> String? {
        if let s = node.scalar?.string { return s }
        guard let items = node.sequence, !items.isEmpty else { return nil }
        let texts = items.compactMap { $0.scalar?.string }
        return texts.count == items.count ? texts.joined(separator: ",") : nil
    }
    public static func yamlShapeRefused(_ node: Node) -> String? {
        for (k, v) in node.mapping ?? [:] {
            guard let key = k.scalar?.string else { return "a \(k.kind) as a key" }
            if valueText(v, key: key) == nil { return "a \(v.kind) for \(key)" }
        }
        return nil
    }
    public static func fromFlag(_ text: String, current: [String: String]?) -> [String: String]? {
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty, current?[parts[0]] == nil else { return nil }
        var out = current ?? [:]
        out[parts[0]] = parts[1]
        return out
    }
    /// The flags start from no keys and then replace the recipe file's by key, so a key given
    /// twice among the flags is refused (the last silently won) while a flag still overrides
    /// the file.
    public static func flagsStart(file: [String: String]) -> [String: String] { [:] }
    public static func joined(flags: [String: String], file: [String: String]) -> [String: String] {
        file.merging(flags) { $1 }
    }
    public static func refusal(flag text: String, current: [String: String]?) -> String? {
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, let earlier = current?[parts[0]] else { return nil }
        return "\(parts[0]) is given twice (\(parts[0])=\(earlier) and \(text)); give each key once"
    }
    public var text: String {
        "{" + keys.sorted().map { "\(RecipeError.quote($0)): \(RecipeError.quote(self[$0]!))" }.joined(separator: ", ") + "}"
    }
    public var yaml: Node { Node(keys.sorted().map { ($0.yaml, self[$0]!.yaml) }) }
}

/// Recipe enums are read by their raw names; anything else is refused, listing the names.
extension RecipeValue where Self: RawRepresentable & CaseIterable, RawValue == String {
    public static func fromYAML(_ node: Node) -> Self? { node.scalar.flatMap { Self(rawValue: $0.string) } }
    public static func fromFlag(_ text: String, current: Self?) -> Self? { Self(rawValue: text) }
    public var text: String { rawValue }
    public var yaml: Node { Node(rawValue) }
}

extension LRSchedule.Kind: RecipeValue {}

/// `scale_rewards` by name, or as TRL's GRPOConfig also takes it, a boolean: true is `group`,
/// false is `none` (its `__post_init__`), so a TRL recipe's `scale_rewards: false` reads as it
/// meant. `recipe.yaml` writes the name.
extension RewardScaling: RecipeValue {
    public static func fromYAML(_ node: Node) -> RewardScaling? {
        guard let scalar = node.scalar else { return nil }
        if let name = RewardScaling(rawValue: scalar.string) { return name }
        return Bool.construct(from: scalar).map { $0 ? RewardScaling.group : RewardScaling.none }
    }
    public static func fromFlag(_ text: String, current: RewardScaling?) -> RewardScaling? {
        if let name = RewardScaling(rawValue: text) { return name }
        // The spellings a recipe's YAML reads as booleans (true, yes, on, False, …).
        return Bool.construct(from: Node.Scalar(text)).map { $0 ? RewardScaling.group : RewardScaling.none }
    }
}
extension RewardAggregation: RecipeValue {}
extension Truncation: RecipeValue {}
extension ModelDirectory.SaveFormat: Codable, RecipeValue {}

/// `optimizer`: the update rule.
public enum OptimizerKind: String, Codable, Sendable, CaseIterable, RecipeValue {
    case adamw, sgd
}

/// `nan_policy`: what a step with a non-finite loss or gradient does.
public enum NaNPolicy: String, Codable, Sendable, CaseIterable, RecipeValue {
    /// End the job with exit code 2.
    case abort
    /// Skip the update and count the step.
    case skip
}
