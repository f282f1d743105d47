import TensorCore

/// An optimizer updates the trainable ranges of the flat parameter buffer from the flat
/// (already summed over ranks) gradient buffer, with clipping folded into the same pass as a
/// gradient scale. Every rank runs it identically, so replicas stay bit-equal. Moments exist
/// only for the trainable set it was made with.
public protocol Optimizer: AnyObject {
    var name: String { get }
    func step(params: ParameterStore, lr: Float, gradScale: Float)
    /// Moments and step count, for checkpoints.
    var state: [String: [Float]] { get }
    func restore(_ state: [String: [Float]]) throws
    /// The names `state` holds, without computing it (ZeRO's `state` is a collective gather).
    var stateKeys: Set<String> { get }
}

/// An optimizer that can leave the gradient it reads at zero, in the same pass as the update
/// (AdamW): the trainer then skips the next step's zeroing pass over the trainable gradients.
/// Only the ranges the optimizer updates are cleared — the trainer's trainable set.
public protocol GradientClearingOptimizer: Optimizer {
    func stepClearingGradients(params: ParameterStore, lr: Float, gradScale: Float)
}

extension Optimizer {
    public var stateKeys: Set<String> { Set(state.keys) }
}

/// Which parameters get weight decay: matrices yes; biases, norm gains and nothing else
/// (the usual GPT-2 / nanoGPT split). As flat ranges, so the update loop stays flat.
func decayRanges(_ params: ParameterStore) -> [Range<Int>] {
    params.entries.filter { $0.shape.count >= 2 }.map { $0.offset..<($0.offset + $0.count) }
}

/// The trainable set as consecutive spans with or without weight decay, each with the
/// offset of its first element in the (trainable-only) moment buffers.
func optimizerSpans(_ params: ParameterStore, trainable: TrainableSet) -> [(range: Range<Int>, decay: Bool, moment: Int)] {
    optimizerSpans(params, ranges: trainable.ranges)
}

/// The same for any disjoint `ranges`, moments laid out in the order given (ZeRO: a rank's
/// parts of the gradient pieces, `ShardPlan.owned`).
func optimizerSpans(_ params: ParameterStore, ranges: [Range<Int>]) -> [(range: Range<Int>, decay: Bool, moment: Int)] {
    let decaying = decayRanges(params).sorted { $0.lowerBound < $1.lowerBound }
    var spans: [(Range<Int>, Bool, Int)] = []
    var moment = 0
    for t in ranges {
        var at = t.lowerBound
        func add(_ r: Range<Int>, _ decay: Bool) {
            guard !r.isEmpty else { return }
            spans.append((r, decay, moment + r.lowerBound - t.lowerBound))
        }
        for d in decaying where d.upperBound > t.lowerBound && d.lowerBound < t.upperBound {
            let lo = max(d.lowerBound, t.lowerBound), hi = min(d.upperBound, t.upperBound)
            add(at..<lo, false)
            add(lo..<hi, true)
            at = hi
        }
        add(at..<t.upperBound, false)
        moment += t.count
    }
    return spans
}

/// The factor that brings the global gradient norm down to `maxNorm` (1 when it is already
/// within it or clipping is off). The norm is global, so the factor is the same on every rank.
public func clipScale(norm: Double, maxNorm: Double) -> Float {
    guard maxNorm > 0, norm > maxNorm else { return 1 }
    return Float(maxNorm / (norm + 1e-6))
}
