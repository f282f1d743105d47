/// The candidate merges of `BPEModel.mergeAll`: a binary min-heap ordered by rank, then by
/// position (the leftmost pair wins ties), as tokenizers' `Merge` orders its `BinaryHeap`.
struct MergeHeap {
    struct Candidate {
        var rank: Int32
        var pos: Int32
        var id: Int32

        @inline(__always) func precedes(_ o: Candidate) -> Bool { rank != o.rank ? rank < o.rank : pos < o.pos }
    }

    private var items: [Candidate] = []

    mutating func push(_ c: Candidate) {
        items.append(c)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[i].precedes(items[parent]) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Candidate? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        if items.isEmpty { return first }
        items[0] = last
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var best = i
            if l < items.count && items[l].precedes(items[best]) { best = l }
            if r < items.count && items[r].precedes(items[best]) { best = r }
            if best == i { return first }
            items.swapAt(i, best)
            i = best
        }
    }
}
