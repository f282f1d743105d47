import Distributed
import Foundation

/// Rewards of one generation batch: every reward function scores all N completions in one
/// batched call (an external command starts once per function per generation), on the
/// coordinator only; the N×F matrix, or the one-line error, is broadcast, so every rank
/// forms the same advantages and a failing scorer ends the job once.
public enum RolloutScoring {
    /// `perFunction[f][i]`: reward function f on completion i.
    public struct Matrix: WireCodable, Equatable {
        public var perFunction: [[Float]]
        public var error: String?
        public init(perFunction: [[Float]], error: String?) { self.perFunction = perFunction; self.error = error }
        public func write(to w: inout WireWriter) {
            w.put(error); w.put(Int64(perFunction.count))
            for row in perFunction { w.put(row) }
        }
        public init(from r: inout WireReader) {
            error = r.getString()
            perFunction = (0..<Int(r.get(Int64.self))).map { _ in r.getFloats() }
        }
    }

    /// Scores every item with every function; a scorer's error or a non-finite reward becomes
    /// the message (naming the example), not a trap. `scored[f]`, where given, is function f's
    /// rewards already computed by every rank together (a reward model's, `scoreModels`).
    public static func score(_ items: [ScoringItem], with functions: [RewardFunction], scored: [Int: Result<[Float], ScorerError>] = [:]) -> Matrix {
        var rows: [[Float]] = []
        for (index, f) in functions.enumerated() {
            do {
                let v = try scored[index]?.get() ?? f.scorer.score(items)
                guard v.count == items.count else {
                    return Matrix(perFunction: [], error: "reward \(f.name) gave \(v.count) scores for \(items.count) completions")
                }
                // NaN: a command's `null`, no reward (TRL's None); any other non-finite score is a fault.
                let abstains = (f.scorer as? ExternalScorer)?.acceptsNull == true
                if let bad = v.firstIndex(where: { !$0.isFinite && !(abstains && $0.isNaN) }) {
                    return Matrix(perFunction: [], error: "\(items[bad].source): reward \(f.name) is \(v[bad]) for a rollout of this prompt; rewards must be finite")
                }
                rows.append(v)
            } catch {
                return Matrix(perFunction: [], error: "reward \(f.name): \(error)")
            }
        }
        return Matrix(perFunction: rows, error: nil)
    }

    /// The reward models' rewards of `items`, each computed by all ranks together
    /// (`RewardModelScorer.score(_:comm:)`), by function index. Collective.
    public static func scoreModels(_ items: [ScoringItem], with functions: [RewardFunction], comm: Communicator) -> [Int: Result<[Float], ScorerError>] {
        var out: [Int: Result<[Float], ScorerError>] = [:]
        for (index, f) in functions.enumerated() {
            if let model = f.scorer as? RewardModelScorer { out[index] = model.score(items, comm: comm) }
        }
        return out
    }

    /// r_i = Σ_f w_f·r_f,i over the functions that scored rollout i (`RewardAggregation.weightedSum`:
    /// NaN where none did; 0 for each of `count` rollouts when there is no function).
    public static func weightedSum(_ m: Matrix, weights: [Float], count: Int) -> [Double] {
        m.perFunction.isEmpty ? [Double](repeating: 0, count: count)
            : RewardAggregation.weightedSum(m.perFunction.map { $0.map(Double.init) }, weights: weights.map(Double.init))
    }
}
