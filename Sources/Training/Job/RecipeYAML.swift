import Foundation
import Models
import Yams

/// Reading a recipe file without trusting it: Yams parses, but only text that cannot hurt it.
///
/// - size: at most `maxBytes`, read from a regular file only (`--config /dev/zero` is refused,
///   not read forever);
/// - nesting: Yams composes recursively, and 3,000 nested `{a: ` overflow the stack. Before
///   parsing, `nestingBound` gives an upper bound of the depth from the text alone, and a file
///   whose bound exceeds `maxNestingBound` is refused;
/// - aliases: Yams shares an aliased node instead of copying it, but anything walking the tree
///   walks every copy (a 500-byte "billion laughs" file is billions of nodes). The walk below
///   counts nodes with aliases expanded and stops at `maxNodes`;
/// - complex keys (`? [a, b]`), merge keys (`<<`) and duplicate keys are refused by the same
///   walk, with the line.
enum RecipeYAML {
    static let maxBytes = 1 << 20
    static let maxNestingBound = 256
    static let maxDepth = 16
    static let maxNodes = 10_000

    /// A YAML syntax error as `file:line:column: invalid YAML: problem (context)`, the form
    /// every other recipe error has; Yams' own text put its context first and the problem on
    /// a second line, which one-line messages dropped ("while scanning a plain scalar").
    static func yamlProblem(_ error: Error, source: String) -> String {
        func line(_ mark: Mark, _ problem: String, _ context: YamlError.Context?) -> String {
            let where_ = context.map { " (\($0.text) at line \($0.mark.line), column \($0.mark.column))" } ?? ""
            return "\(source):\(mark.line):\(mark.column): invalid YAML: \(RecipeError.quote(problem + where_, limit: 160))"
        }
        switch error as? YamlError {
        case let .scanner(context, problem, mark, _)?, let .parser(context, problem, mark, _)?, let .composer(context, problem, mark, _)?:
            return line(mark, problem, context)
        default:
            let first = String(describing: error).split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
            return "\(source): invalid YAML (\(RecipeError.quote(first, limit: 160)))"
        }
    }

    /// The top-level mapping: each key with its value and line. Errors name the source.
    static func topLevel(_ text: String, source: String) throws -> [(key: String, value: Node, line: Int)] {
        let bytes = text.utf8.count
        guard bytes <= maxBytes else { throw RecipeError("\(source): \(bytes) bytes; a recipe may have at most \(maxBytes)") }
        // Two lines that are each a whole `{…}` are not YAML (two flow mappings in a row), but
        // they are JSONL: `--config data.jsonl` was "nested too deeply" or "did not find
        // expected <document start>".
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        func jsonObject(_ line: String) -> Bool {
            line.hasPrefix("{") && line.hasSuffix("}") && (try? JSONSerialization.jsonObject(with: Data(line.utf8))) is [String: Any]
        }
        if lines.count >= 2, lines.prefix(2).allSatisfy(jsonObject) {
            throw RecipeError("\(source): one JSON object per line is JSONL data, not a recipe (a YAML mapping of keys): give it as --data")
        }
        let bound = nestingBound(text)
        guard bound <= maxNestingBound else {
            throw RecipeError("\(source): nested too deeply for a recipe (its brackets and indentation allow \(bound) levels; at most \(maxNestingBound))")
        }
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch { throw RecipeError(yamlProblem(error, source: source)) }
        guard let root else { throw RecipeError("\(source): the recipe is empty (it must set at least one key)") }
        try checkTree(root, source: source)
        guard let mapping = root.mapping else { throw RecipeError("\(source): a recipe must be a mapping of keys to values") }
        if mapping.count == 0 { throw RecipeError("\(source): the recipe is empty (it must set at least one key)") }
        // checkTree has made sure every key is a scalar.
        return mapping.map { ($0.key.scalar?.string ?? "", $0.value, $0.key.mark?.line ?? 0) }
    }

    /// Walks the tree as any reader would see it (aliases expanded), without recursion, and
    /// refuses what a recipe has no use for and Yams' own readers would trap or stall on.
    static func checkTree(_ root: Node, source: String) throws {
        var stack: [(node: Node, depth: Int)] = [(root, 1)]
        var seen = 0
        while let (node, depth) = stack.popLast() {
            seen += 1
            guard seen <= maxNodes else {
                throw RecipeError("\(source): more than \(maxNodes) values once aliases are expanded; a recipe needs far fewer")
            }
            guard depth <= maxDepth else { throw RecipeError("\(source):\(line(node)): nested more than \(maxDepth) levels deep") }
            switch node {
            case .scalar: break
            case .sequence(let s): stack.append(contentsOf: s.map { ($0, depth + 1) })
            case .mapping(let m):
                var keys = Set<String>()
                for (k, v) in m {
                    guard let key = k.scalar else { throw RecipeError("\(source):\(line(k)): a mapping key must be a plain name, not a \(k.kind)") }
                    if key.string == "<<" && key.style == .plain { throw RecipeError("\(source):\(line(k)): merge keys (<<) are not supported in a recipe") }
                    guard keys.insert(key.string).inserted else {
                        throw RecipeError("\(source):\(line(k)): duplicate key \"\(RecipeError.quote(key.string))\"")
                    }
                    stack.append((v, depth + 1))
                }
            }
        }
    }

    private static func line(_ n: Node) -> Int { n.mark?.line ?? 0 }

    /// An upper bound of the nesting depth of any YAML text, from the text alone (so a file
    /// that would overflow the parser's recursion is refused before it is parsed).
    ///
    /// Flow collections each start with `[` or `{`: at most their count. Block collections
    /// nest only to the right: along a chain of nested block collections the start columns
    /// never decrease and rise at least every second level, so the chain has at most twice
    /// as many levels as distinct columns. A chain's columns are either indentations (at most
    /// the largest indentation + 1 distinct values) or starts after an indicator (`- `, `? `,
    /// `: `) on the last line of the chain (at most the most indicators on one line).
    /// Line breaks are libyaml's: LF, CR, NEL, LS, PS.
    ///
    /// A comment's brackets and indicators open nothing (300 comment lines `# {[` were refused
    /// as 906 levels): from a `#` at a line's start or after a space or tab, nothing counts up
    /// to the line's end or the next quote. That `#` is a comment's start unless it is inside a
    /// quoted or block scalar, whose brackets open nothing either; counting again from the
    /// next `"` or `'` keeps the bound for what follows a quoted scalar's end (`["a #", [[…`).
    static func nestingBound(_ text: String) -> Int {
        var brackets = 0, maxIndent = 0, maxIndicators = 0
        var indent = 0, inIndent = true, indicators = 0, inComment = false
        var previous: UInt8 = 0x0A
        func endLine() {
            maxIndent = max(maxIndent, indent); maxIndicators = max(maxIndicators, indicators)
            indent = 0; inIndent = true; indicators = 0; inComment = false
        }
        let u = Array(text.utf8)
        var i = 0
        while i < u.count {
            let b = u[i]
            if b == 0x0A || b == 0x0D || (b == 0xC2 && i + 1 < u.count && u[i + 1] == 0x85)
                || (b == 0xE2 && i + 2 < u.count && u[i + 1] == 0x80 && (u[i + 2] == 0xA8 || u[i + 2] == 0xA9)) {
                if previous == 0x2D || previous == 0x3F || previous == 0x3A { indicators += 1 }
                endLine()
                previous = 0x0A
                i += 1
                continue
            }
            if inIndent && b == 0x20 { indent += 1 } else { inIndent = false }
            if b == 0x23 && (previous == 0x0A || previous == 0x20 || previous == 0x09) { inComment = true }
            if b == 0x22 || b == 0x27 { inComment = false }
            if inComment {
                previous = b
                i += 1
                continue
            }
            if b == 0x5B || b == 0x7B { brackets += 1 }
            // An indicator counts when followed by a space, a tab or the end of the line.
            if (previous == 0x2D || previous == 0x3F || previous == 0x3A) && (b == 0x20 || b == 0x09) { indicators += 1 }
            previous = b
            i += 1
        }
        if previous == 0x2D || previous == 0x3F || previous == 0x3A { indicators += 1 }
        endLine()
        return 2 * (maxIndent + 1 + maxIndicators + 1) + brackets
    }
}

extension Recipe {
    /// Loads a YAML recipe from a regular file. Errors name the file (and the line and key).
    public static func load(path: String) throws -> Recipe {
        var st = stat()  // follows symlinks: a link to a recipe is fine, a FIFO or /dev/zero is not
        guard stat(path, &st) == 0 else {
            let code = errno
            throw RecipeError(code == ENOENT ? "\(path): no such recipe file" : "\(path): cannot read recipe (\(String(cString: strerror(code))))")
        }
        guard st.st_mode & S_IFMT == S_IFREG else { throw RecipeError("\(path): not a regular file (a recipe is a YAML file)") }
        guard let h = FileHandle(forReadingAtPath: path) else { throw RecipeError("\(path): cannot read recipe") }
        defer { try? h.close() }
        let data: Data
        do { data = try h.read(upToCount: RecipeYAML.maxBytes + 1) ?? Data() } catch {
            throw RecipeError("\(path): cannot read recipe (\(MessageText.reason(error, for: path)))")
        }
        guard data.count <= RecipeYAML.maxBytes else { throw RecipeError("\(path): larger than \(RecipeYAML.maxBytes) bytes; that is not a recipe") }
        guard let text = String(data: data, encoding: .utf8) else { throw RecipeError("\(path): not UTF-8 text") }
        return try parse(yaml: text, source: path)
    }

    /// A recipe from YAML text: the defaults, with the keys the text sets.
    public static func parse(yaml text: String, source: String) throws -> Recipe {
        var recipe = Recipe()
        for (name, value, line) in try RecipeBlocks.flatten(RecipeYAML.topLevel(text, source: source), source: source) {
            guard let key = Recipe.key(named: name) else {
                let shown = RecipeError.quote(name)
                // The hint compares short names only: an edit distance over a huge key is slow.
                let hint = name.count > 64 ? nil : knownKeys.min { editDistance($0, name) < editDistance($1, name) }
                throw RecipeError("\(source):\(line): unknown key \"\(shown)\""
                                  + (ForeignNames.keyHint(name) ?? hint.map { " (did you mean \"\($0)\"?)" } ?? ""))
            }
            try key.read(value, into: &recipe, at: "\(source):\(line):")
            recipe.origins[name] = "\(source):\(line)"
            // Each named set's own line, for a message about its file (`eval_data.add`).
            if name == Recipe.declared.evalData.name, let sets = value.mapping {
                for (k, _) in sets { if let set = k.scalar?.string, let at = k.mark?.line { recipe.origins[name + "." + set] = "\(source):\(at)" } }
            }
        }
        return recipe
    }
}
