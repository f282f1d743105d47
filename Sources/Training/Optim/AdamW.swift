import Foundation
import TensorCore

/// AdamW (Loshchilov & Hutter 2019, arXiv 1711.05101): Adam with bias correction and
/// decoupled weight decay,
///   m ← β1·m + (1−β1)·g,  v ← β2·v + (1−β2)·g²,
///   θ ← θ − lr·( m̂/(√v̂ + ε) + λ·θ )   (λ only on matrices),
/// over the trainable ranges of the flat buffer in one loop, as llm.c's gpt2_update.
public final class AdamW: Optimizer {
    public let name = "adamw"
    public let beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    private var m: [Float], v: [Float]
    private var t = 0
    private let spans: [(range: Range<Int>, decay: Bool, moment: Int)]

    public init(params: ParameterStore, trainable: TrainableSet? = nil, beta1: Float = 0.9, beta2: Float = 0.95,
                eps: Float = 1e-8, weightDecay: Float = 0.0) {
        let trainable = trainable ?? .all(params)
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
        m = [Float](repeating: 0, count: trainable.count)
        v = [Float](repeating: 0, count: trainable.count)
        spans = optimizerSpans(params, trainable: trainable)
    }

    public func step(params: ParameterStore, lr: Float, gradScale: Float = 1) {
        t += 1
        let c1 = 1 - Float(pow(Double(beta1), Double(t)))
        let c2 = 1 - Float(pow(Double(beta2), Double(t)))
        let p = params.values, g = params.grads
        m.withUnsafeMutableBufferPointer { m in
            v.withUnsafeMutableBufferPointer { v in
                for (range, decays, moment) in spans {
                    OptimizerKernels.adamw(p: p + range.lowerBound, g: g + range.lowerBound,
                                           m: m.baseAddress! + moment, v: v.baseAddress! + moment,
                                           count: range.count, gradScale: gradScale, lr: lr,
                                           beta1: beta1, beta2: beta2, c1: c1, c2: c2, eps: eps,
                                           wd: decays ? weightDecay : 0)
                }
            }
        }
    }

    public var state: [String: [Float]] { ["m": m, "v": v, "t": [Float(t)]] }

    /// Every value is checked before any is taken: a checkpoint's manifest proves its bytes
    /// are the ones written, not that they make sense (a hand-made or buggy file).
    public func restore(_ state: [String: [Float]]) throws {
        let m = try restoredArray(state, "m", count: self.m.count)
        let v = try restoredArray(state, "v", count: self.v.count, nonNegative: true)
        let t = try restoredArray(state, "t", count: 1)[0]
        // Float holds every integer up to 2^24 exactly; a step count beyond that was never written.
        guard t >= 0, t <= 16_777_216, t == t.rounded() else {
            throw StateError(.tensor, "t", "is \(t), not a step count (an integer in 0...16777216)")
        }
        self.m = m; self.v = v; self.t = Int(t)
    }
}
