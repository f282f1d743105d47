import Yams

/// `lora_targets`: module names as the user wrote them. A flag gives comma-separated text
/// (`--lora-targets q_proj,v_proj`, or `all-linear`); a recipe gives that text or a YAML list
/// (`lora_targets: [q_proj, v_proj]`, peft's `target_modules` form), kept as the same text, so
/// `recipe.yaml`, the resume comparison and checkpoints see one spelling.
public struct ModuleList: RecipeValue, ExpressibleByStringLiteral, Sendable {
    /// The names joined by commas, as `--lora-targets` takes them.
    public var text: String

    public init(_ text: String) { self.text = text }
    public init(stringLiteral value: String) { text = value }

    /// The names, or nil when one is empty or not a module path (`LoRATraining.targets`).
    public var names: [String]? { LoRATraining.targets(text) }

    public static func fromYAML(_ node: Node) -> ModuleList? {
        if let s = String.fromYAML(node) { return ModuleList(s) }
        guard let items = node.sequence, !items.isEmpty else { return nil }
        var names: [String] = []
        for item in items {
            guard let s = String.fromYAML(item), !s.contains(",") else { return nil }
            names.append(s)
        }
        return ModuleList(names.joined(separator: ","))
    }
    public static func fromFlag(_ text: String, current: ModuleList?) -> ModuleList? { ModuleList(text) }
    public var yaml: Node { text.yaml }

    // One string, as the key was saved before it could be a list: older checkpoints resume.
    public init(from decoder: Decoder) throws { text = try decoder.singleValueContainer().decode(String.self) }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(text)
    }
}
