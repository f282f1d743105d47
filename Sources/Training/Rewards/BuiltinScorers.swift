import Foundation

/// 1 when the normalised completion equals the normalised reference.
public final class ExactMatchScorer: Scorer {
    public let name = "exact"
    let ignoreCase: Bool
    public init(ignoreCase: Bool = false) { self.ignoreCase = ignoreCase }
    public func score(_ items: [ScoringItem]) throws -> [Float] {
        try items.map { item in
            guard let ref = item.reference else { throw ScorerError("\(item.source): exact match needs a reference answer") }
            return ScorerRegistry.normalise(item.completion, ignoreCase: ignoreCase)
                == ScorerRegistry.normalise(ref, ignoreCase: ignoreCase) ? 1 : 0
        }
    }
}

/// 1 when the normalised reference occurs in the completion.
public final class ContainsScorer: Scorer {
    public let name = "contains"
    let ignoreCase: Bool
    public init(ignoreCase: Bool = false) { self.ignoreCase = ignoreCase }
    public func score(_ items: [ScoringItem]) throws -> [Float] {
        try items.map { item in
            guard let ref = item.reference else { throw ScorerError("\(item.source): contains needs a reference answer") }
            let needle = ScorerRegistry.normalise(ref, ignoreCase: ignoreCase)
            return ScorerRegistry.normalise(item.completion, ignoreCase: ignoreCase).contains(needle) ? 1 : 0
        }
    }
}

/// Compares the last number in the completion with the last number in the reference,
/// within |a − b| ≤ tolerance·max(1, |b|). "The answer is 12." and "12" agree; thousands
/// separators are ignored. No number in the completion scores 0. A reference with no number
/// at all (a mixed dataset's string task) is compared exactly, after normalisation, so one
/// scorer serves a whole mixed evaluation set.
public final class NumericScorer: Scorer {
    public let name = "numeric"
    let tolerance: Double
    public init(tolerance: Double) { self.tolerance = tolerance }

    public static func lastNumber(_ s: String) -> Double? {
        let cleaned = s.replacingOccurrences(of: ",", with: "")
        guard let re = try? NSRegularExpression(pattern: #"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?"#) else { return nil }
        let ns = cleaned as NSString
        guard let m = re.matches(in: cleaned, range: NSRange(location: 0, length: ns.length)).last else { return nil }
        return Double(ns.substring(with: m.range))
    }

    public func score(_ items: [ScoringItem]) throws -> [Float] {
        try items.map { item in
            guard let ref = item.reference else {
                throw ScorerError("\(item.source): numeric match needs a reference answer")
            }
            guard let want = NumericScorer.lastNumber(ref) else {
                return ScorerRegistry.normalise(item.completion) == ScorerRegistry.normalise(ref) ? 1 : 0
            }
            guard let got = NumericScorer.lastNumber(ThinkingReplies.answer(item.completion)) else { return 0 }
            return abs(got - want) <= tolerance * max(1, abs(want)) ? 1 : 0
        }
    }
}

/// 1 when the completion matches a regular expression (a format check).
public final class RegexScorer: Scorer {
    public let name = "regex"
    let regex: NSRegularExpression
    public init(pattern: String) throws {
        do { regex = try NSRegularExpression(pattern: pattern) } catch {
            throw ScorerError("scorer regex: invalid pattern \(pattern.debugDescription)")
        }
    }
    public func score(_ items: [ScoringItem]) throws -> [Float] {
        items.map { item in
            let ns = item.completion as NSString
            return regex.firstMatch(in: item.completion, range: NSRange(location: 0, length: ns.length)) != nil ? 1 : 0
        }
    }
}
