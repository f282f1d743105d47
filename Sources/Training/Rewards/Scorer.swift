import Foundation

/// A reward: one Float per completion (1/0 for the verifiers, anything for an external
/// scorer). The rollout methods (GRPO, CHORD, pseudo-labelling) and every accuracy number
/// go through this one protocol. Scoring is batched so an external process is started once
/// per batch, not once per completion. NaN means "no reward": only an `ExternalScorer` that
/// `acceptsNull` gives it (TRL's None), and every other non-finite score is an error.
public protocol Scorer: AnyObject {
    var name: String { get }
    func score(_ items: [ScoringItem]) throws -> [Float]
}

public struct ScoringItem: Sendable {
    public var prompt: String
    public var completion: String
    public var reference: String?
    /// Where the example came from (`file:line`), for error messages.
    public var source: String
    /// The text of the token that ended a rollout (its eos, the template's end of turn; nil when
    /// it was cut at max_completion_length, or unknown). The text scorers compare `completion`
    /// alone; a reward model reads it after the completion, as its training pairs end
    /// (`RewardModelScorer`).
    public var stop: String? = nil
    /// The row's other fields, a JSON object's text (`RowColumns`): what TRL passes a reward
    /// function as keyword arguments. nil: none (or not read: only an external scorer reads them).
    public var columns: String? = nil
    public init(prompt: String, completion: String, reference: String?, source: String, stop: String? = nil, columns: String? = nil) {
        self.prompt = prompt; self.completion = completion; self.reference = reference; self.source = source; self.stop = stop
        self.columns = columns
    }
}

public struct ScorerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// Scorers by name: `exact`, `numeric`, `regex`, `contains`, `task` (the built-in tasks'
/// solver), or `command` (an external program, `--scorer-cmd`). Arguments come as key=value strings, unknown keys rejected.
public enum ScorerRegistry {
    public static let names = ["exact", "numeric", "regex", "contains", "task", "command"]

    public static func make(name: String, args: [String: String]) throws -> Scorer {
        try makeReading(name: name, args: args).scorer
    }

    /// The scorer and its arguments as it reads them, defaults included (`ignore_case=false`,
    /// `tolerance=1e-06`, `timeout=60.0`): resume compares `reward_args` in this form
    /// (`Recipe.resolvedRewards`), so `ignore_case=yes` is `ignore_case=true`.
    static func makeReading(name: String, args: [String: String]) throws -> (scorer: Scorer, read: [String: String]) {
        var a = args
        var read: [String: String] = [:]
        func take(_ k: String) -> String? { a.removeValue(forKey: k) }
        /// true or false (YAML's and Python's spellings too); anything else is refused, not read as false.
        func flag(_ k: String) throws -> Bool {
            let value: Bool
            switch take(k)?.lowercased() {
            case nil, "false", "0", "no", "off": value = false
            case "true", "1", "yes", "on": value = true
            case let v?: throw ScorerError("scorer \(name): \(k) must be true or false (got \(RecipeError.quote(v)))")
            }
            read[k] = "\(value)"
            return value
        }
        let scorer: Scorer
        switch name {
        case "exact": scorer = ExactMatchScorer(ignoreCase: try flag("ignore_case"))
        case "contains": scorer = ContainsScorer(ignoreCase: try flag("ignore_case"))
        case "task": scorer = TaskScorer()
        case "numeric":
            let tol = take("tolerance").map { Double($0) } ?? 1e-6
            guard let tol, tol >= 0 else { throw ScorerError("scorer numeric: tolerance must be a number ≥ 0") }
            read["tolerance"] = "\(tol)"
            scorer = NumericScorer(tolerance: tol)
        case "regex":
            guard let pattern = take("pattern") else { throw ScorerError("scorer regex: needs pattern=REGEX") }
            scorer = try RegexScorer(pattern: pattern)
            read["pattern"] = pattern
        case "command":
            guard let cmd = take("cmd"), !cmd.isEmpty else { throw ScorerError("scorer command: needs its program: --scorer-cmd \"program args\" (eval), --reward-arg command.cmd=\"program args\" (train)") }
            let t = take("timeout").map { Double($0) } ?? 60
            // Bounded above: the deadline is computed in nanoseconds, and a scorer that needs
            // more than a day per batch is a hung one.
            guard let t, t > 0, t <= ExternalScorer.maxTimeout else {
                throw ScorerError("scorer command: the timeout (--scorer-timeout in eval, --reward-arg command.timeout= in train) must be a number of seconds in (0, \(Int(ExternalScorer.maxTimeout))]")
            }
            scorer = ExternalScorer(command: cmd, timeout: t)
            read["cmd"] = cmd; read["timeout"] = "\(t)"
        default:
            throw ScorerError("unknown scorer \"\(name)\"; known: \(names.joined(separator: ", "))")
        }
        if let extra = a.keys.sorted().first { throw ScorerError("scorer \(name): unknown argument \"\(extra)\"") }
        return (scorer, read)
    }

    /// Trims, and folds runs of whitespace to one space: formatting is not the answer; nor is a
    /// leading reasoning block (`<think>…</think>`, Qwen3's: `ThinkingReplies.answer`).
    public static func normalise(_ s: String, ignoreCase: Bool = false) -> String {
        let folded = ThinkingReplies.answer(s).split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
        return ignoreCase ? folded.lowercased() : folded
    }
}
