import Yams

/// List keys (`rewards`): a YAML sequence of scalars (or one scalar), in order; from flags,
/// one item per repetition (`--reward exact --reward regex=0.2`).
extension Array: RecipeValue where Element == String {
    public static func fromYAML(_ node: Node) -> [String]? {
        if node.isNull { return [] }
        if let s = node.scalar { return [s.string] }
        guard let items = node.sequence else { return nil }
        var out: [String] = []
        for item in items {
            guard let s = item.scalar, !item.isNull else { return nil }
            out.append(s.string)
        }
        return out
    }
    public static func fromFlag(_ text: String, current: [String]?) -> [String]? { (current ?? []) + [text] }
    public var text: String { "[" + map { RecipeError.quote($0) }.joined(separator: ", ") + "]" }
    public var yaml: Node { Node(map(\.yaml)) }
}
