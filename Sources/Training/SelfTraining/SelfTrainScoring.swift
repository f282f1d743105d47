import Foundation

/// The scorer of a self-training run (`--self-train-scorer`) and the one notion of "the same
/// answer" that voting and de-duplication share: the scorer's own normal form (the last number
/// for `numeric`, whitespace-folded text otherwise, lower-cased for `ignore_case` scorers).
public struct SelfTrainScoring {
    /// Scorers that need no arguments; `task` checks an answer against the built-in tasks'
    /// solver without a reference, so it also measures pseudo-label precision.
    public static let names = ["exact", "numeric", "contains", "task"]

    public let name: String
    public let scorer: Scorer

    public init(name: String) throws {
        self.name = name
        scorer = try ScorerRegistry.make(name: name, args: [:])
    }

    /// Whether the scorer compares with a reference answer (so it cannot judge an unlabelled
    /// prompt's answer).
    public var needsReference: Bool { name != "task" }

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
