import Foundation
import Yams

/// One recipe key, declared once in `RecipeKeys`: its name, type, default, limits and help.
/// Everything else reads the declaration: the YAML reader, the `train` flags (name and help),
/// validation, `recipe.yaml`, the cross-rank check and the resume comparison.
public struct RecipeKey<Value: RecipeValue>: Sendable {
    public let setting: Setting<Value>
    public let defaultValue: Value
    /// Whether a resumed run may change the key (see `ResumeRule`).
    public let resume: ResumeRule
    /// The flag, when it is not the kebab-case name (`--watchdog` for `watchdog_seconds`).
    let flagName: String?

    public init(_ setting: Setting<Value>, default value: Value, resume: ResumeRule = .mustMatch, flag: String? = nil) {
        self.setting = setting
        defaultValue = value
        self.resume = resume
        flagName = flag
    }

    public init(_ name: String, _ value: Value, _ limits: Limits<Value>, _ help: String,
                resume: ResumeRule = .mustMatch, flag: String? = nil) {
        self.init(Setting(name, limits, help), default: value, resume: resume, flag: flag)
    }
}

/// Whether a key may differ between the run that saved a checkpoint and the run that resumes
/// it. Keys that change the losses must match, or the resumed run is silently a different
/// run; keys about output, logging, checking and paths whose content is verified another way
/// (the training data by its hash) may change.
public enum ResumeRule: Sendable {
    case mustMatch, mayChange
    /// Must match when the saved recipe trains on what the key sets (max_new_tokens: the
    /// length of self-training's and spin's generated rows, else only of evaluations).
    case mustMatchWhen(@Sendable (Recipe) -> Bool)

    /// Whether a run resuming a checkpoint of `saved` must keep the key's value.
    public func binds(_ saved: Recipe) -> Bool {
        switch self {
        case .mustMatch: return true
        case .mayChange: return false
        case .mustMatchWhen(let trains): return trains(saved)
        }
    }
}

/// A key with its value type erased, so the recipe can iterate over all of them.
public protocol AnyRecipeKey: Sendable {
    var name: String { get }
    var flag: String { get }
    /// The help line: what it is, its limits and its default.
    var help: String { get }
    var resume: ResumeRule { get }
    /// Reads a YAML value; `at` is "file:line" for the message.
    func read(_ node: Node, into r: inout Recipe, at: String) throws
    /// Reads a flag's text (`--steps -1` reaches here as "-1").
    func read(flag text: String, into r: inout Recipe) throws
    /// Reads every value of a repeatable flag, in order.
    func read(flags texts: [String], into r: inout Recipe) throws
    /// Throws when the recipe's value is outside the limits; `prefix` says where it came from.
    func check(_ r: Recipe, prefix: String) throws
    func text(of r: Recipe) -> String
    func same(_ a: Recipe, _ b: Recipe) -> Bool
    /// Chosen in `r`: away from its default, or given as a flag (`Recipe.deliberate`).
    func deliberate(in r: Recipe) -> Bool
    func encode(_ r: Recipe, to c: inout KeyedEncodingContainer<RecipeCodingKey>) throws
    /// The value for `recipe.yaml`; nil for an unset optional key (left out).
    func yaml(of r: Recipe) -> Node?
    func decode(_ c: KeyedDecodingContainer<RecipeCodingKey>, into r: inout Recipe) throws
}

extension RecipeKey: AnyRecipeKey {
    public var name: String { setting.name }
    public var flag: String { flagName ?? setting.flag }
    public var help: String { "\(setting.help) [\(setting.limits.text)] (default: \(defaultValue.text))" }

    public func read(_ node: Node, into r: inout Recipe, at: String) throws {
        guard let v = Value.fromYAML(node) else {
            // What the type says it refused, where the node's text or kind would not say (a NUL,
            // a tag, a nested value).
            if let why = Value.yamlShapeRefused(node) {
                throw RecipeError("\(at) \(name) must be \(Value.yamlForm ?? setting.limits.text) (got \(why))")
            }
            if let form = Value.yamlForm {
                throw RecipeError("\(at) \(name) must be \(form) (got \(node.scalar.map { RecipeError.quote($0.string) } ?? "a \(node.kind)"))")
            }
            // `batch_size: "8"` is the string 8 in YAML: say so, or "(got 8)" reads as in range.
            if let scalar = node.scalar, scalar.style == .singleQuoted || scalar.style == .doubleQuoted {
                throw RecipeError("\(at) \(name) must be \(setting.limits.text) (got the quoted string \"\(RecipeError.quote(scalar.string))\"; write it without quotes)")
            }
            throw wrong(at + " " + name, got: node.scalar?.string ?? Value.yamlShapeRefused(node) ?? "a \(node.kind)")
        }
        r[self] = v
        if let form = Value.yamlForm, !setting.limits.accepts(v) { throw RecipeError("\(at) \(name) must be \(form) (got \(v.text))") }
        // The value as written: `lr: 1e-400` is read as 0 and said "(got 0.0)".
        if !setting.limits.accepts(v) { throw wrong(at + " " + name, got: node.scalar?.string ?? v.text) }
        try check(r, prefix: at + " ")
    }

    public func read(flag text: String, into r: inout Recipe) throws {
        guard let v = Value.fromFlag(text, current: r[self]) else {
            if let why = Value.refusal(flag: text, current: r[self]) { throw RecipeError("--\(flag) \(text): \(why)") }
            throw wrong("--" + flag, got: text)
        }
        r[self] = v
        r.origins[name] = nil
        r.flagged.insert(name)
        if !setting.limits.accepts(v) { throw wrong("--" + flag, got: text) }
    }

    /// A repeatable flag's values, with the recipe file's value as the type joins them
    /// (`RecipeValue.flagsStart`, `joined`; named files: a flag's name replaces the file's).
    public func read(flags texts: [String], into r: inout Recipe) throws {
        guard !texts.isEmpty else { return }
        // A selection flag (`--freeze`, `--lora-targets`): each value checked as given, then
        // their union (keeping only the last one given trained what the others had frozen).
        if let union = setting.limits.union {
            for text in texts { try read(flag: text, into: &r) }
            if texts.count > 1 { try read(flag: union(texts), into: &r) }
            return
        }
        let file = r[self]
        r[self] = Value.flagsStart(file: file)
        for text in texts { try read(flag: text, into: &r) }
        r[self] = Value.joined(flags: r[self], file: file)
        // Flags add named sets or replace the file's of their names: those lose the file's line
        // (`eval_data.NAME`), the file's other entries keep theirs.
        if let now = r[self] as? NamedFiles, let before = file as? NamedFiles {
            for set in now.names where before.files[set] != now.files[set] || texts.contains(where: { $0.hasPrefix(set + "=") }) {
                r.origins[name + "." + set] = nil
            }
        }
    }

    public func check(_ r: Recipe, prefix: String) throws {
        let v = r[self]
        if !setting.limits.accepts(v) { throw wrong(prefix + name, got: v.text) }
    }

    private func wrong(_ what: String, got: String) -> RecipeError {
        // A long list of choices (objective's thirty names) leaves less of the line for the value.
        let limit = setting.limits.text.count > 150 ? 16 : 40
        return RecipeError("\(what) must be \(setting.limits.text) (got \(got.isEmpty ? "an empty value" : RecipeError.quote(got, limit: limit)))")
    }

    public func text(of r: Recipe) -> String { r[self].text }
    public func same(_ a: Recipe, _ b: Recipe) -> Bool { a[self] == b[self] }
    public func deliberate(in r: Recipe) -> Bool { r.deliberate(self) }

    public func encode(_ r: Recipe, to c: inout KeyedEncodingContainer<RecipeCodingKey>) throws {
        // Optional keys that are unset are left out, as synthesized Codable did.
        let v = r[self]
        if let o = v as? OptionalMarker, o.isNone { return }
        try c.encode(v, forKey: RecipeCodingKey(name))
    }

    public func yaml(of r: Recipe) -> Node? {
        let v = r[self]
        if let o = v as? OptionalMarker, o.isNone { return nil }
        return v.yaml
    }

    public func decode(_ c: KeyedDecodingContainer<RecipeCodingKey>, into r: inout Recipe) throws {
        if let v = try c.decodeIfPresent(Value.self, forKey: RecipeCodingKey(name)) { r[self] = v }
    }
}

/// Lets the encoder leave out an unset optional without knowing its wrapped type.
protocol OptionalMarker { var isNone: Bool { get } }
extension Optional: OptionalMarker { var isNone: Bool { self == nil } }

public struct RecipeCodingKey: CodingKey {
    public let stringValue: String
    public init(_ s: String) { stringValue = s }
    public init?(stringValue: String) { self.stringValue = stringValue }
    public var intValue: Int? { nil }
    public init?(intValue: Int) { nil }
}

extension Node {
    /// "mapping", "sequence" or "scalar", for messages about a value of the wrong shape.
    var kind: String {
        switch self {
        case .scalar: return "scalar"
        case .mapping: return "mapping"
        case .sequence: return "sequence"
        }
    }
}
