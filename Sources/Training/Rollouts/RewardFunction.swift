import Foundation
import Models

/// One reward function of a rollout run: a `Scorer` with a weight. The rollout's reward is
/// r = Σ_f w_f·r_f (TRL's `reward_weights`; under normalize_then_sum the z-scored r_f are
/// summed, `RewardAggregation`); each r_f is logged as
/// `rewards/<name>/mean`. Built from `--reward NAME[=WEIGHT]` (recipe `rewards:` list) and
/// `--reward-arg NAME.key=value` (or `key=value` when there is one reward function).
public struct RewardFunction {
    public let name: String
    public let scorer: Scorer
    public let weight: Float
    /// Whether the scorer compares with the reference answer (so every prompt must carry one).
    public let needsReference: Bool

    public init(name: String, scorer: Scorer, weight: Float, needsReference: Bool) {
        self.name = name; self.scorer = scorer; self.weight = weight; self.needsReference = needsReference
    }

    /// Every scorer of `ScorerRegistry` and `format` (`FormatScorer`).
    public static let names = ScorerRegistry.names + ["format"]
    static let referenceScorers: Set<String> = ["exact", "numeric", "contains"]

    /// `NAME` or `NAME=WEIGHT` → (name, weight); nil when malformed. NAME is a scorer's name or
    /// a reward model's directory (`RewardModelScorer`), whose path may hold "=" (a run named
    /// `runs/lr=1e-3`): the weight follows the last one, and a whole spec that names a reward
    /// model's directory is that directory.
    static func parse(_ spec: String) -> (name: String, weight: Float)? {
        // (A LoRA adapter's directory too: `RewardModelScorer` says how to merge it first.)
        func named(_ name: String) -> Bool {
            names.contains(name) || ModelDirectory.holdsRewardModel(name)
                || FileManager.default.fileExists(atPath: name + "/" + AdapterDirectory.configFile)
        }
        if named(spec) { return (spec, 1) }
        guard let eq = spec.lastIndex(of: "="), named(String(spec[..<eq])),
              let w = Double(decimal: String(spec[spec.index(after: eq)...])), Float(w).isFinite else { return nil }
        return (String(spec[..<eq]), Float(w))
    }

    /// Why a `--reward` spec that `parse` refuses names a directory that is not a reward model's
    /// (or a path that does not exist), or nil: the generic refusal lists the function names only.
    static func directoryProblem(_ spec: String) -> String? {
        // A function or reward model named well, with a weight that is not one: the weight is the problem.
        if let eq = spec.lastIndex(of: "="), parse(String(spec[..<eq])) != nil { return nil }
        let path = spec.lastIndex(of: "=").map { String(spec[..<$0]) }.flatMap { FileManager.default.fileExists(atPath: $0) ? $0 : nil } ?? spec
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            return path.contains("/") ? "\(path) does not exist (give a reward model's directory, or a function: one of \(names.joined(separator: ", ")))" : nil
        }
        guard isDirectory.boolValue else { return "\(path) is a file, not a reward model's directory" }
        guard FileManager.default.fileExists(atPath: path + "/config.json") else { return "\(path) holds no config.json: not a model's directory" }
        if (try? JSONObjectFile.read(path + "/config.json")) == nil { return "\(path)/config.json cannot be read as a model's configuration" }
        return "\(path) is a language model's directory, not a reward model's (its config.json names no ...ForSequenceClassification architecture, the score head a reward model has; train one with --objective reward)"
    }

    /// The reward functions of a recipe. Arguments are routed by their `NAME.` prefix; an
    /// unprefixed key is allowed only when there is one function. A name may appear once.
    public static func make(specs: [String], args: [String: String]) throws -> [RewardFunction] {
        try makeReading(specs: specs, args: args).map(\.function)
    }

    /// The reward functions of a rollout run (and of superhf's `--reward`): as `make`, and a
    /// command among them may leave a completion unscored (`null`, TRL's None:
    /// `ExternalScorer.acceptsNull`). A `--self-train-scorer`, made by `make`, must judge every answer.
    public static func forRollouts(specs: [String], args: [String: String]) throws -> [RewardFunction] {
        let functions = try make(specs: specs, args: args)
        for case let command as ExternalScorer in functions.map(\.scorer) { command.acceptsNull = true }
        return functions
    }

    /// The functions with each one's arguments as its scorer reads them (`ScorerRegistry.makeReading`).
    static func makeReading(specs: [String], args: [String: String]) throws -> [(function: RewardFunction, read: [String: String])] {
        let parsed = try specs.map { spec -> (name: String, weight: Float) in
            guard let p = parse(spec) else { throw ScorerError("--reward \(RecipeError.quote(spec)): expected NAME or NAME=WEIGHT with NAME one of \(names.joined(separator: ", ")) or a reward model's directory, and a finite weight") }
            return p
        }
        if let dup = Dictionary(grouping: parsed.map(\.name), by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw ScorerError("--reward \(dup) is given twice; give each reward function once, with its weight")
        }
        var routed: [String: [String: String]] = [:]
        for (key, value) in args.sorted(by: { $0.key < $1.key }) {
            let parts = key.split(separator: ".", maxSplits: 1).map(String.init)
            if parts.count == 2, parsed.contains(where: { $0.name == parts[0] }) {
                routed[parts[0], default: [:]][parts[1]] = value
            } else if parts.count == 1, parsed.count == 1 {
                routed[parsed[0].name, default: [:]][key] = value
            } else if parts.count == 2 {
                throw ScorerError("--reward-arg \(RecipeError.quote(key)): \(parts[0]) is not one of the reward functions (\(parsed.map(\.name).joined(separator: ", "))): add --reward \(parts[0]), or drop the argument")
            } else {
                throw ScorerError("--reward-arg \(RecipeError.quote(key)): name the reward function it is for (NAME.key=value with NAME one of \(parsed.map(\.name).joined(separator: ", ")))")
            }
        }
        let made = try parsed.map { p in
            let a = routed[p.name] ?? [:]
            let scorer: Scorer, read: [String: String]
            do {
                if p.name == "format" { let f = try FormatScorer(args: a); (scorer, read) = (f, ["pattern": f.pattern]) }
                else if !names.contains(p.name) {
                    if let key = a.keys.sorted().first { throw ScorerError("--reward-arg \(p.name).\(key): a reward model takes no arguments") }
                    (scorer, read) = (try RewardModelScorer(path: p.name), [:])
                }
                else { (scorer, read) = try ScorerRegistry.makeReading(name: p.name, args: a) }
            } catch let e as ScorerError {
                // The scorer's own words name its keys; in train they come by --reward-arg (a reward
                // model takes none).
                if "\(e)".contains("--reward-arg") || !names.contains(p.name) { throw e }
                throw ScorerError("\(e) (in train, as --reward-arg \(p.name).KEY=VALUE)")
            }
            return (RewardFunction(name: scorer is RewardModelScorer ? scorer.name : p.name, scorer: scorer, weight: p.weight,
                                   needsReference: referenceScorers.contains(p.name)), read)
        }
        // A reward model is named by its directory's last component (TRL's name): two could meet,
        // or meet a scorer, in rewards/NAME/… of metrics.jsonl.
        let byName = Dictionary(grouping: zip(parsed, made.map(\.0)), by: { $0.1.name })
        if let name = byName.keys.sorted().first(where: { byName[$0]!.count > 1 }), let clash = byName[name] {
            throw ScorerError("--reward \(clash.map { $0.0.name }.joined(separator: " and ")): both are named \(name) in the metrics (a reward model by its directory's last component, as TRL names it); give one directory another name")
        }
        return made
    }
}

/// A format reward: 1 when the whole completion matches `pattern` (anchored at both ends, as
/// TRL's format rewards use `re.match(…$)`), else 0. The default pattern accepts one non-blank
/// line: an answer that stopped instead of running on. Unlike `regex` (a search anywhere),
/// the entire completion must have the form.
public final class FormatScorer: Scorer {
    public let name = "format"
    let regex: NSRegularExpression
    /// As given, or the default: what resume compares.
    let pattern: String
    public static let defaultPattern = #"[^\n]*\S[^\n]*"#

    public init(args: [String: String]) throws {
        var a = args
        pattern = a.removeValue(forKey: "pattern") ?? Self.defaultPattern
        if let extra = a.keys.sorted().first { throw ScorerError("reward format: unknown argument \"\(extra)\"") }
        do { regex = try NSRegularExpression(pattern: "\\A(?:" + pattern + ")\\z") } catch {
            throw ScorerError("reward format: invalid pattern \(pattern.debugDescription)")
        }
    }

    public func score(_ items: [ScoringItem]) throws -> [Float] {
        items.map { item in
            let ns = item.completion as NSString
            return regex.firstMatch(in: item.completion, range: NSRange(location: 0, length: ns.length)) != nil ? 1 : 0
        }
    }
}

extension Limits where Value == [String] {
    /// `rewards`: each item NAME or NAME=WEIGHT.
    static var rewardSpecs: Limits {
        Limits("reward functions NAME or NAME=WEIGHT (NAME one of \(RewardFunction.names.joined(separator: ", ")), or a reward model's directory)") {
            // A directory that is not a reward model's passes here: `Recipe.validate` says what it is.
            $0.allSatisfy { RewardFunction.parse($0) != nil || RewardFunction.directoryProblem($0) != nil }
        }
    }
}
