/// How work items 0..<count are dealt over ranks: round-robin, item i to rank i mod size as
/// its (i / size)-th local item. Every sharded loop in sft-dist (training sequences, held-out
/// scoring, generation, evaluation) uses this one rule, so "global item i" means the same
/// thing everywhere and results can be put back in global order whatever the rank count.
public struct RankShard: Sendable {
    public let rank: Int
    public let size: Int

    public init(rank: Int, size: Int) {
        precondition(size > 0 && rank >= 0 && rank < size, "RankShard: rank \(rank) of \(size)")
        self.rank = rank; self.size = size
    }

    /// The global indices this rank owns, in order.
    public func indices(of count: Int) -> [Int] { Array(stride(from: rank, to: count, by: size)) }

    /// This rank's items of `items`, in order.
    public func mine<T>(_ items: [T]) -> [T] { indices(of: items.count).map { items[$0] } }

    /// The global index of this rank's `local`-th item.
    public func global(_ local: Int) -> Int { rank + local * size }

    /// Every rank's local lists (indexed by rank, as an allgather returns them) back in global
    /// order, for `count` items in all.
    public func interleave<T>(_ perRank: [[T]], count: Int) -> [T] {
        precondition(perRank.count == size, "RankShard.interleave: \(perRank.count) lists for \(size) ranks")
        return (0..<count).map { perRank[$0 % size][$0 / size] }
    }
}

extension Communicator {
    public var shard: RankShard { RankShard(rank: rank, size: size) }
}
