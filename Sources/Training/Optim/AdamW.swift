import Foundation
import TensorCore

/// AdamW (Loshchilov & Hutter 2019, arXiv 1711.05101): Adam with bias correction and
/// decoupled weight decay,
///   m ← β1·m + (1−β1)·g,  v ← β2·v + (1−β2)·g²,
///   θ ← θ − lr·( m̂/(√v̂ + ε) + λ·θ )   (λ only on matrices),
/// over the trainable ranges of the flat buffer in one loop, as llm.c's gpt2_update.
public final class AdamW: GradientClearingOptimizer {
    public let name = "adamw"
    public let beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    private var m: [Float], v: [Float]
    private var t = 0
    private let spans: [(range: Range<Int>, decay: Bool, moment: Int)]

    public init(params: ParameterStore, trainable: TrainableSet? = nil, beta1: Float = 0.9, beta2: Float = 0.95,
                eps: Float = 1e-8, weightDecay: Float = 0.0) {
        let trainable = trainable ?? .all(params)
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
        CheckedAllocation.probe(floats: 2 * trainable.count, for: "AdamW's moments of \(trainable.count) parameters")
        m = [Float](repeating: 0, count: trainable.count)
        v = [Float](repeating: 0, count: trainable.count)
        spans = optimizerSpans(params, trainable: trainable)
    }

    public func step(params: ParameterStore, lr: Float, gradScale: Float = 1) {
        step(params: params, lr: lr, gradScale: gradScale, clearing: false)
    }

    /// The same update, the trainable gradients left at zero (read, then overwritten in the
    /// same pass): what the trainer calls, so the next step needs no zeroing pass.
    public func stepClearingGradients(params: ParameterStore, lr: Float, gradScale: Float) {
        step(params: params, lr: lr, gradScale: gradScale, clearing: true)
    }

    private func step(params: ParameterStore, lr: Float, gradScale: Float, clearing: Bool) {
        t += 1
        adamwUpdate(spans: spans, p: params.values, gradient: { range, _ in UnsafePointer(params.grads + range.lowerBound) },
                    m: &m, v: &v, t: t, lr: lr, gradScale: gradScale, beta1: beta1, beta2: beta2, eps: eps,
                    weightDecay: weightDecay, clearing: clearing)
    }

    public var state: [String: [Float]] { ["m": m, "v": v, "t": [Float(t)]] }

    /// Every value is checked before any is taken: a checkpoint's manifest proves its bytes
    /// are the ones written, not that they make sense (a hand-made or buggy file).
    public func restore(_ state: [String: [Float]]) throws {
        let m = try restoredArray(state, "m", count: self.m.count)
        let v = try restoredArray(state, "v", count: self.v.count, nonNegative: true)
        let t = try restoredStepCount(state)
        self.m = m; self.v = v; self.t = t
    }
}

/// One AdamW step (`t`: the step count, already advanced) over `spans`, each span's moments
/// at its `moment` offset and its gradient where `gradient(range, moment)` says (the flat
/// gradient buffer; ZeRO's shard, laid out as the moments).
func adamwUpdate(spans: [(range: Range<Int>, decay: Bool, moment: Int)], p: UnsafeMutablePointer<Float>,
                 gradient: (Range<Int>, Int) -> UnsafePointer<Float>, m: inout [Float], v: inout [Float], t: Int,
                 lr: Float, gradScale: Float, beta1: Float, beta2: Float, eps: Float, weightDecay: Float,
                 clearing: Bool = false) {
    let c1 = 1 - Float(pow(Double(beta1), Double(t)))
    let c2 = 1 - Float(pow(Double(beta2), Double(t)))
    m.withUnsafeMutableBufferPointer { m in
        v.withUnsafeMutableBufferPointer { v in
            for (range, decays, moment) in spans {
                OptimizerKernels.adamw(p: p + range.lowerBound, g: gradient(range, moment),
                                       m: m.baseAddress! + moment, v: v.baseAddress! + moment,
                                       count: range.count, gradScale: gradScale, lr: lr,
                                       beta1: beta1, beta2: beta2, c1: c1, c2: c2, eps: eps,
                                       wd: decays ? weightDecay : 0, clearing: clearing)
            }
        }
    }
}
