import Foundation
import Yams

/// `eval_data`: named files, `NAME=FILE` from a repeatable flag (`--eval-data add=add.jsonl`) or
/// a YAML mapping (`eval_data: {add: add.jsonl}`). A name becomes part of metric keys
/// (`eval_add_loss`), so it is letters, digits, `-` and `_` only; a name given twice is refused
/// rather than the second file silently replacing the first (YAML's duplicate keys are refused
/// by the recipe reader itself).
public struct NamedFiles: RecipeValue, Sendable {
    public var files: [String: String]

    public init(_ files: [String: String] = [:]) { self.files = files }

    /// Names in a stable order (the order metrics, the plot and the retention table use).
    public var names: [String] { files.keys.sorted() }
    public var isEmpty: Bool { files.isEmpty }

    /// Why these set names cannot be told apart in a metrics row or the plot (nil: they can).
    /// A set's fields are `eval_NAME_` + the held-out set's (`EvalResult.fieldNames`), so a
    /// name such as mean_token made eval_mean_token_accuracy a second time in one row (readers
    /// keep the last: the set's exact match read as the held-out token accuracy); and
    /// held-out is how the log and loss.svg name the held-out set itself.
    public static func clash(_ names: [String]) -> String? {
        if let n = names.first(where: { $0 == "held-out" }) {
            return "the set name \"\(n)\" is how the log and loss.svg name the held-out set (--heldout); choose another"
        }
        var owner: [String: String] = [:]   // field → who writes it
        for f in EvalResult.fieldNames { owner["eval_" + f] = "the held-out set" }
        for n in names {
            for f in EvalResult.fieldNames {
                let key = "eval_\(n)_\(f)"
                if let other = owner[key] { return "the set name \"\(n)\" makes the metric \(key), which \(other) writes too; choose another" }
                owner[key] = "the set \"\(n)\""
            }
        }
        return nil
    }

    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64 && name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_"
        }
    }

    public static func fromYAML(_ node: Node) -> NamedFiles? {
        guard let m = node.mapping else { return node.isNull ? NamedFiles() : nil }
        var out: [String: String] = [:]
        for (k, v) in m {
            guard let name = k.scalar?.string, let path = String.fromYAML(v), out[name] == nil else { return nil }
            out[name] = path
        }
        return NamedFiles(out)
    }

    public static func yamlShapeRefused(_ node: Node) -> String? {
        for (k, v) in node.mapping ?? [:] {
            if let why = String.yamlShapeRefused(v) { return "\(why) for \(k.scalar?.string ?? "a set")" }
        }
        return nil
    }

    public static func fromFlag(_ text: String, current: NamedFiles?) -> NamedFiles? {
        let parts = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        var out = current ?? NamedFiles()
        guard parts.count == 2, out.files[parts[0]] == nil else { return nil }
        out.files[parts[0]] = parts[1]
        return out
    }

    public static var yamlForm: String? {
        "a mapping of set names (1 to 64 letters, digits, - or _) to files, each name once (eval_data: {add: add.jsonl, mul: mul.jsonl})"
    }

    public static func refusal(flag text: String, current: NamedFiles?) -> String? {
        guard let eq = text.firstIndex(of: "=") else { return "expected NAME=FILE (add=add.jsonl), a name for the set and its file" }
        let name = String(text[..<eq])
        guard let earlier = current?.files[name] else { return nil }
        return "the set name \"\(RecipeError.quote(name))\" is given twice (the first is \(RecipeError.quote(earlier))); name each set once"
    }

    /// Flags override the recipe file by name: `--eval-data add=…` replaces the file's `add`
    /// set and adds new names beside its others; a name twice among the flags is refused
    /// (`fromFlag`), so they start from no sets.
    public static func flagsStart(file: NamedFiles) -> NamedFiles { NamedFiles() }
    public static func joined(flags: NamedFiles, file: NamedFiles) -> NamedFiles {
        NamedFiles(file.files.merging(flags.files) { $1 })
    }

    public var text: String {
        "{" + names.map { "\(RecipeError.quote($0)): \(RecipeError.quote(files[$0]!))" }.joined(separator: ", ") + "}"
    }
    public var yaml: Node { Node(names.map { ($0.yaml, files[$0]!.yaml) }) }

    public init(from decoder: Decoder) throws { files = try [String: String](from: decoder) }
    public func encode(to encoder: Encoder) throws { try files.encode(to: encoder) }
}

extension Limits where Value == NamedFiles {
    static var namedFiles: Limits {
        Limits("NAME=FILE with each NAME (1 to 64 letters, digits, - or _) given once and a non-empty FILE") { v in
            v.files.allSatisfy { NamedFiles.isValidName($0.key) && !$0.value.isEmpty }
        }
    }
}
