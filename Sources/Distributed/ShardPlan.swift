/// How ZeRO (Rajbhandari et al., arXiv 1910.02054, sec. 5) splits the trainable gradient
/// buffer over ranks: the same pieces the overlapped allreduce sums (`GradientBuckets`: each
/// block's trainable range as backward finishes it, then the ranges no block covers, cut into
/// pieces of at most `maxFloatsPerPiece`), and each piece cut into `size` consecutive parts,
/// part r owned by rank r. Every rank thus owns 1/size of every bucket, so each bucket's
/// reduce-scatter can start as soon as backward has finished it, and the update work is
/// balanced. A pure function of (regions, blocks, size, cap): every rank derives the same plan.
public struct ShardPlan: Sendable, Equatable {
    /// Pieces of the flat buffer, in the order their reduce-scatters start.
    public let pieces: [Range<Int>]
    public let size: Int

    /// `regions`: sorted, disjoint trainable ranges; `blocks`: the model's block ranges in the
    /// order backward finishes them. Throws when a piece has fewer floats than there are
    /// ranks (a rank would own nothing of it).
    public init(regions: [Range<Int>], blocks: [Range<Int>], size: Int, maxFloatsPerPiece: Int = 1 << 20) throws {
        let regions = regions.filter { !$0.isEmpty }
        let cap = max(1, maxFloatsPerPiece)
        func cut(_ r: Range<Int>) -> [Range<Int>] {
            stride(from: r.lowerBound, to: r.upperBound, by: cap).map { $0..<min($0 + cap, r.upperBound) }
        }
        func inside(_ range: Range<Int>) -> [Range<Int>] {
            regions.compactMap { r in
                let lo = max(r.lowerBound, range.lowerBound), hi = min(r.upperBound, range.upperBound)
                return lo < hi ? lo..<hi : nil
            }
        }
        var pieces: [Range<Int>] = []
        for b in blocks { pieces += inside(b).flatMap(cut) }
        let covered = pieces.sorted { $0.lowerBound < $1.lowerBound }
        for region in regions {
            var at = region.lowerBound
            for r in covered where r.upperBound > region.lowerBound && r.lowerBound < region.upperBound {
                if r.lowerBound > at { pieces += cut(at..<r.lowerBound) }
                at = max(at, r.upperBound)
            }
            if at < region.upperBound { pieces += cut(at..<region.upperBound) }
        }
        if let small = pieces.first(where: { $0.count < size }) {
            throw ShardPlanError(message: "--zero: a gradient bucket (floats \(small.lowerBound)..<\(small.upperBound)) has \(small.count) trainable floats, fewer than the \(size) ranks that would share it; run on at most \(small.count) ranks or without --zero")
        }
        self.pieces = pieces
        self.size = size
    }

    /// Floats of `piece` each rank owns (they sum to the piece's length).
    public func counts(_ piece: Range<Int>) -> [Int] {
        (0..<size).map { part(piece, rank: $0).count }
    }

    /// Rank `rank`'s consecutive part of `piece`.
    public func part(_ piece: Range<Int>, rank: Int) -> Range<Int> {
        let n = piece.count
        return (piece.lowerBound + n * rank / size)..<(piece.lowerBound + n * (rank + 1) / size)
    }

    /// Rank `rank`'s parts of every piece, in piece order: the ranges its optimizer updates
    /// (its moments and gradient shard are laid out in this order).
    public func owned(rank: Int) -> [Range<Int>] { pieces.map { part($0, rank: rank) } }
}

public struct ShardPlanError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
