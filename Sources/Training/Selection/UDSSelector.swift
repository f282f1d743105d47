import TensorCore

/// `--selection uds`: Utility–Diversity Sampling (arXiv 2510.16882 §3; the authors'
/// `UDSamplingTrainer.compute_top_index`). For candidate i with logits L_i (its own rows,
/// no padding),
///   score_i = ‖L_i‖_* + α · mean_j ‖z_i − q_j‖₂
/// where ‖·‖_* is the nuclear norm (utility), z_i the JL sketch of L_i (`UDSSketch`) and q_j
/// the sketches in a FIFO queue of previously selected candidates (diversity; 0 while the
/// queue is empty). The `keep` highest scores train and their sketches enter the queue.
/// Unlike the authors' per-GPU micro-batch selection, the pool here is the whole step's, and
/// the queue, updated on every rank from the same broadcast decision, is the same everywhere
/// and checkpointed (`queue`, `queue_next`, `queue_count`).
/// Arguments: `alpha` (2.5e-3), `queue` (capacity, 1024), `sketch_time` (r1 = 8),
/// `sketch_vocab` (r2 = 128).
public final class UDSSelector: CandidateSelector {
    public let name = "uds"
    public let alpha: Double
    public let capacity: Int
    public let sketch: UDSSketch
    public var scorer: CandidateScorer? { UDSScorer(sketch: sketch) }
    /// FIFO of selected sketches: `capacity` slots of `sketch.dimension` floats.
    public private(set) var queue: [Float]
    public private(set) var next = 0
    public private(set) var count = 0

    public init(alpha: Double, capacity: Int, sketch: UDSSketch) {
        self.alpha = alpha; self.capacity = capacity; self.sketch = sketch
        queue = [Float](repeating: 0, count: capacity * sketch.dimension)
    }

    /// mean_j ‖z − q_j‖₂ over the filled slots (0 when none).
    public func diversity(_ z: ArraySlice<Float>) -> Double {
        guard count > 0 else { return 0 }
        let D = sketch.dimension
        var total = 0.0
        for j in 0..<count {
            var s = 0.0
            for (k, v) in z.enumerated() { let d = Double(v) - Double(queue[j * D + k]); s += d * d }
            total += s.squareRoot()
        }
        return total / Double(count)
    }

    func scores(_ pool: SelectionPool) -> (utility: [Double], diversity: [Double], score: [Double]) {
        let utility = pool.features.map { Double($0[0]) }
        let spread = pool.features.map { diversity($0.dropFirst()) }
        return (utility, spread, zip(utility, spread).map { $0 + alpha * $1 })
    }

    public func describe(_ pool: SelectionPool) -> [(String, [Double])] {
        let s = scores(pool)
        return [("utility", s.utility), ("diversity", s.diversity), ("score", s.score)]
    }

    public func select(_ pool: SelectionPool) -> SelectionDecision {
        let (utility, spread, score) = scores(pool)
        let chosen = SelectionRanking.top(score, k: pool.keep)
        return SelectionDecision(selected: chosen, statistics: [
            ("uds_utility", SelectionRanking.mean(utility, at: chosen)),
            ("uds_diversity", SelectionRanking.mean(spread, at: chosen)),
            ("uds_queue", Double(min(capacity, count + chosen.count)))])
    }

    /// Pushes the selected sketches, in pool order, overwriting the oldest when full.
    public func commit(_ decision: SelectionDecision, pool: SelectionPool) {
        let D = sketch.dimension
        for i in decision.selected {
            let z = pool.features[i].dropFirst()
            for (k, v) in z.enumerated() { queue[next * D + k] = v }
            next = (next + 1) % capacity
            count = min(capacity, count + 1)
        }
    }

    public func saveState() -> ComponentState {
        ComponentState(values: ["queue_next": .int(next), "queue_count": .int(count)],
                       tensors: ["queue": StateTensor(shape: [capacity, sketch.dimension], values: queue)])
    }

    public func restoreState(_ state: ComponentState) throws {
        try state.expectTensors(["queue"])
        let q = try state.tensor("queue", count: capacity * sketch.dimension)
        let c = try state.int("queue_count", in: 0...capacity)
        let n = try state.int("queue_next", in: 0...max(0, capacity - 1))
        queue = q; count = c; next = n
    }
}

/// [‖L‖_*, sketch of L…] for one candidate. On a `HiddenStateModel` both come from the
/// hidden states H and, once per scoring pass, the head W: ‖H·op(W)‖_* through
/// `HeadGramFactor` and the sketch's right side as H·(op(W)·C2), so the [n, V] logits are
/// never formed (the costly part of UDS's scoring was forming them and their n×n Gram).
struct UDSScorer: HeadFactoredScorer {
    let sketch: UDSSketch
    func score(_ c: CandidateView) -> [Float] {
        [Float(NuclearNorm.of(c.logits, rows: c.rows, cols: c.vocab))] + sketch.sketch(c.logits, rows: c.rows)
    }

    func prepared(head: UnsafePointer<Float>, vocab: Int, width: Int, layout: WeightLayout) -> (CandidateHidden) -> [Float] {
        let gram = HeadGramFactor(head: head, vocab: vocab, width: width, layout: layout)
        let projection = sketch.headProjection(head: head, width: width, layout: layout)
        return { [sketch] c in
            [Float(gram.nuclearNorm(hidden: c.hidden, rows: c.rows))]
                + sketch.sketch(hidden: c.hidden, rows: c.rows, width: c.width, projection: projection)
        }
    }
}
