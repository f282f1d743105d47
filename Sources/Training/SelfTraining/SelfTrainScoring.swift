import Foundation

/// The scorer of a self-training run (`--self-train-scorer NAME`) and the one notion of "the
/// same answer" that voting and de-duplication share: the scorer's own normal form (the last
/// number for `numeric`, whitespace-folded text otherwise). NAME is any reward function name of
/// `--reward` (`RewardFunction.names`), built by the same registry, with its arguments from
/// `--reward-arg NAME.key=value` (e.g. `regex.pattern=…`, `command.cmd=…`), so the two flags
/// name scorers one way.
public struct SelfTrainScoring {
    /// Every reward function name; `task` checks an answer against the built-in tasks' solver
    /// without a reference, so it also measures pseudo-label precision.
    public static let names = RewardFunction.names

    public let name: String
    public let scorer: Scorer
    /// Whether the scorer compares with a reference answer (so it cannot judge an unlabelled
    /// prompt's answer): `exact`, `numeric`, `contains`.
    public let needsReference: Bool

    /// `rewardArgs`: the recipe's `reward_args`; the entries `NAME.key` are this scorer's.
    public init(name: String, rewardArgs: [String: String] = [:]) throws {
        let function = try RewardFunction.make(specs: [name], args: rewardArgs.filter { $0.key.hasPrefix(name + ".") })[0]
        self.name = name
        scorer = function.scorer
        needsReference = function.needsReference
    }

    /// The scorer as a reward function of weight 1 (SuperHF without `--reward`).
    public var rewardFunction: RewardFunction {
        RewardFunction(name: name, scorer: scorer, weight: 1, needsReference: needsReference)
    }

    /// The key answers are voted and de-duplicated by.
    public static func answerKey(_ completion: String, scorer name: String?) -> String {
        if name == "numeric", let v = NumericScorer.lastNumber(completion) { return String(v) }
        return ScorerRegistry.normalise(completion)
    }

    /// 1/0 per item (> 0.5 counts as accepted), or the scorer's one-line error.
    public func accepts(_ items: [ScoringItem]) throws -> [Bool] {
        try scorer.score(items).map { $0 > 0.5 }
    }
}
