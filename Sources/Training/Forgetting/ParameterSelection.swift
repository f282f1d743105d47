import Foundation
import TensorCore

/// `--freeze REGEX` / `--trainable REGEX`: which parameters a run updates, chosen by regular
/// expressions over their Hugging Face checkpoint names (`transformer.wte.weight`,
/// `model.layers.0.self_attn.q_proj.weight`, …). A pattern matches when it is found anywhere
/// in the name (Python's `re.search`); anchor it with `^…$` for whole names. The trainable set
/// is the parameters `--trainable` matches (all when unset) minus those `--freeze` matches.
///
/// Freezing part of the network (embeddings, attention, lower layers) is one of the simplest
/// baselines against SFT's forgetting of general abilities ("SFT Doesn't Always Hurt General
/// Capabilities", arXiv 2509.20758, §5 compares such restricted-update baselines with TALR).
/// Frozen tensors get no gradient and no optimizer state (`TrainableSet`).
public struct ParameterSelection {
    public var freeze: String?
    public var trainable: String?
    /// How messages name the two settings: their flags, or a recipe's `file:LINE: freeze`.
    var label: (String) -> String = { "--" + $0 }
    public init(freeze: String?, trainable: String?) { self.freeze = freeze; self.trainable = trainable }
    /// The selection a recipe asks for, its messages naming where each setting was given.
    public init(_ recipe: Recipe) {
        self.init(freeze: recipe.freeze, trainable: recipe.trainable)
        label = { recipe.label($0, flag: $0) }
    }

    /// Whether `pattern` compiles as a regular expression (the recipe keys' limit).
    public static func isValidPattern(_ pattern: String) -> Bool {
        !pattern.isEmpty && (try? NSRegularExpression(pattern: pattern)) != nil
    }

    /// The trainable set of `store`; a pattern that matches no parameter or every one, or a
    /// combination that leaves nothing to train, is an error naming the flag.
    public func trainableSet(_ store: ParameterStore) throws -> TrainableSet {
        guard freeze != nil || trainable != nil else { return .all(store) }
        let names = store.entries.map(\.name)
        func matching(_ flag: String, _ pattern: String) throws -> Set<String> {
            guard let re = try? NSRegularExpression(pattern: pattern) else {
                throw SelectionError("\(label(flag)) \(Self.quote(pattern)) is not a regular expression")
            }
            let hits = Set(names.filter { re.firstMatch(in: $0, range: NSRange($0.startIndex..., in: $0)) != nil })
            if hits.isEmpty {
                throw SelectionError("\(label(flag)) \(Self.quote(pattern)) matches none of the model's \(names.count) parameters (they are named like \(Self.examples(names)))")
            }
            if hits.count == names.count {
                let what = flag == "freeze" ? "nothing would train" : "that is the default; leave the flag out"
                throw SelectionError("\(label(flag)) \(Self.quote(pattern)) matches every one of the model's \(names.count) parameters: \(what)")
            }
            return hits
        }
        var chosen = Set(names)
        if let t = trainable { chosen = try matching("trainable", t) }
        if let f = freeze { chosen.subtract(try matching("freeze", f)) }
        if chosen.isEmpty {
            throw SelectionError("\(label("freeze")) \(Self.quote(freeze ?? "")) freezes every parameter that \(label("trainable")) \(Self.quote(trainable ?? "")) selects: nothing would train")
        }
        return TrainableSet(store, where: { chosen.contains($0.name) })
    }

    /// A few names from the start, middle and end of the layout.
    static func examples(_ names: [String]) -> String {
        let picks = [0, 1, names.count / 2, names.count - 1].filter { $0 < names.count }
        var seen = Set<Int>()
        return picks.filter { seen.insert($0).inserted }.map { names[$0] }.joined(separator: ", ")
    }

    static func quote(_ s: String) -> String { "\"" + s + "\"" }
}

public struct SelectionError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}
