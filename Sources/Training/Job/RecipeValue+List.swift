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
    /// `--reward` flags over a recipe file's `rewards`: a flag naming a function the file lists
    /// replaces that entry (its weight; `--reward format=0` leaves it out of the sum), another
    /// is added. All were added, so a recipe's function could not be reweighted, and
    /// `--reward task=2` over recipes/grpo.yaml said "--reward task is given twice".
    public static func flagsStart(file: [String]) -> [String] { [] }
    public static func joined(flags: [String], file: [String]) -> [String] {
        var out = file, replaced = Set<String>()
        for spec in flags {
            let name = RewardFunction.parse(spec)?.name
            // A name two flags give stays twice, for the check that refuses it.
            if let name, !replaced.contains(name), let i = out.firstIndex(where: { RewardFunction.parse($0)?.name == name }) {
                out[i] = spec
                replaced.insert(name)
            } else {
                out.append(spec)
                if let name { replaced.insert(name) }
            }
        }
        return out
    }
    public var text: String { "[" + map { RecipeError.quote($0) }.joined(separator: ", ") + "]" }
    public var yaml: Node { Node(map(\.yaml)) }
}
