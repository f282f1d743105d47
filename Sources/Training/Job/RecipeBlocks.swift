import Yams

/// Nested recipe blocks that spell several flat keys (issue 13):
///
///     selection: {name: uds, pool: 4, args: {alpha: 0.5}}
///
/// is `selection: uds`, `selection_pool: 4`, `selection_args: {alpha: 0.5}` — the flags
/// `--selection`, `--selection-pool`, `--selection-arg`. The flat keys keep working and
/// `selection: uds` stays a plain value; only a mapping is read as the block. Each field is
/// then read by its flat key's declaration (limits, messages, `recipe.yaml`, which stays flat).
/// An unknown field is the loader's unknown-key error, spelled `selection.FIELD`; a field
/// also given as its flat key is a duplicate key; a block without `name` is refused (it would
/// set a pool or arguments for no selector).
enum RecipeBlocks {
    /// Block → field → flat key.
    static let blocks: [String: [(field: String, key: String)]] = [
        "selection": [("name", "selection"), ("pool", "selection_pool"), ("args", "selection_args")],
    ]

    static func flatten(_ entries: [(key: String, value: Node, line: Int)], source: String) throws
        -> [(key: String, value: Node, line: Int)] {
        var out: [(key: String, value: Node, line: Int)] = []
        for entry in entries {
            guard let fields = blocks[entry.key], let mapping = entry.value.mapping else { out.append(entry); continue }
            for (k, v) in mapping {
                // RecipeYAML.checkTree has made sure every key is a scalar.
                let name = k.scalar?.string ?? "", line = k.mark?.line ?? entry.line
                guard let flat = fields.first(where: { $0.field == name })?.key else {
                    let shown = RecipeError.quote(name)
                    let hint = name.count > 64 ? nil : fields.map(\.field).min { editDistance($0, name) < editDistance($1, name) }
                    throw RecipeError("\(source):\(line): unknown key \"\(entry.key).\(shown)\""
                                      + (hint.map { " (did you mean \"\(entry.key).\($0)\"?)" } ?? ""))
                }
                out.append((flat, v, line))
            }
            guard mapping.contains(where: { $0.key.scalar?.string == fields[0].field }) else {
                throw RecipeError("\(source):\(entry.line): the \(entry.key) block needs \(fields[0].field) (\(entry.key): {\(fields[0].field): …})")
            }
        }
        var first: [String: Int] = [:]
        for e in out {
            if let line = first[e.key] { throw RecipeError("\(source):\(e.line): duplicate key \"\(e.key)\" (also set at line \(line))") }
            first[e.key] = e.line
        }
        return out
    }
}
