import Distributed

/// An online batch selector (issue 13): which of a step's candidate pool train.
///
/// Every rank scores its shard of the pool forward-only with `scorer` (and `referenceScorer`
/// on the reference model, when there is one); the score vectors are gathered so every rank
/// holds all of them (`SelectionPool`); the coordinator calls `select` and broadcasts the
/// decision; then every rank calls `commit` with it, so state such as UDS's queue is the same
/// on every rank. Scores are computed per candidate alone (`CandidateScoring`), so the decision
/// does not depend on the rank count.
public protocol CandidateSelector: AnyObject {
    var name: String { get }
    /// Per-candidate features from the model being trained; nil: no scoring pass (random).
    var scorer: CandidateScorer? { get }
    /// Per-candidate features from the frozen reference model (`--ref-model`), if needed.
    var referenceScorer: CandidateScorer? { get }
    /// On the coordinator: the candidates (and loss tokens) that train this step.
    func select(_ pool: SelectionPool) -> SelectionDecision
    /// On every rank, after the broadcast.
    func commit(_ decision: SelectionDecision, pool: SelectionPool)
    /// Per-candidate scores by name, for `sft-dist select`'s scores file.
    func describe(_ pool: SelectionPool) -> [(String, [Double])]
    /// State that lives across steps (checkpointed with the producer).
    func saveState() -> ComponentState
    func restoreState(_ state: ComponentState) throws
}

extension CandidateSelector {
    public var referenceScorer: CandidateScorer? { nil }
    public func commit(_ decision: SelectionDecision, pool: SelectionPool) {}
    public func describe(_ pool: SelectionPool) -> [(String, [Double])] { [] }
    public func saveState() -> ComponentState { ComponentState() }
    public func restoreState(_ state: ComponentState) throws {}
}

/// One step's candidates with their gathered features, identical on every rank.
public struct SelectionPool {
    public var step: Int
    public var seed: UInt64
    public var candidates: [StepSequence]
    /// `scorer`'s vector per candidate (empty vectors without a scorer).
    public var features: [[Float]]
    /// `referenceScorer`'s vector per candidate (empty without one).
    public var referenceFeatures: [[Float]]
    /// How many candidates the budget allows (`budget` × pool, at least 1).
    public var keep: Int
    public init(step: Int, seed: UInt64, candidates: [StepSequence], features: [[Float]], referenceFeatures: [[Float]], keep: Int) {
        self.step = step; self.seed = seed; self.candidates = candidates; self.features = features
        self.referenceFeatures = referenceFeatures; self.keep = keep
    }
}

/// The coordinator's decision, broadcast: pool indices that train (ascending), an optional
/// new loss mask for each (token pruning; empty = unchanged), and the selector's statistics
/// for the metrics row.
public struct SelectionDecision: WireCodable, Equatable {
    public var selected: [Int]
    public var lossMasks: [[UInt8]]
    public var statistics: [String]
    public var values: [Double]
    public init(selected: [Int], lossMasks: [[UInt8]] = [], statistics: [(String, Double)] = []) {
        self.selected = selected
        self.lossMasks = lossMasks.isEmpty ? Array(repeating: [], count: selected.count) : lossMasks
        self.statistics = statistics.map(\.0); self.values = statistics.map(\.1)
    }
    public func write(to w: inout WireWriter) {
        w.put(selected.map(Int64.init)); w.put(Int64(lossMasks.count))
        for m in lossMasks { w.put(m) }
        w.put(WireList(statistics)); w.put(values.map(\.bitPattern))
    }
    public init(from r: inout WireReader) {
        selected = r.getArray(Int64.self).map(Int.init)
        lossMasks = (0..<Int(r.get(Int64.self))).map { _ in r.getArray(UInt8.self) }
        statistics = r.get(WireList<String>.self).items
        values = r.getArray(UInt64.self).map(Double.init(bitPattern:))
    }
}

enum SelectionRanking {
    /// The `k` indices with the largest (or smallest) scores, ties to the lower index,
    /// returned ascending. Non-finite scores rank last.
    static func top(_ scores: [Double], k: Int, largest: Bool = true) -> [Int] {
        let key = scores.map { $0.isFinite ? (largest ? -$0 : $0) : .infinity }
        let order = scores.indices.sorted { key[$0] != key[$1] ? key[$0] < key[$1] : $0 < $1 }
        return Array(order.prefix(k)).sorted()
    }

    /// Mean of `values` at `indices` (0 when empty), for statistics.
    static func mean(_ values: [Double], at indices: [Int]) -> Double {
        indices.isEmpty ? 0 : indices.reduce(0) { $0 + values[$1] } / Double(indices.count)
    }
}
