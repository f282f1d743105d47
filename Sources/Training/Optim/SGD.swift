import TensorCore

/// SGD with optional heavy-ball momentum and decoupled weight decay:
///   g ← gradScale·g,  b ← μ·b + g,  θ ← θ − lr·(b + λ·θ)   (λ only on matrices),
/// over the trainable ranges.
public final class SGD: Optimizer {
    public let name = "sgd"
    public let momentum: Float, weightDecay: Float
    private var buf: [Float]
    private let spans: [(range: Range<Int>, decay: Bool, moment: Int)]

    public init(params: ParameterStore, trainable: TrainableSet? = nil, momentum: Float = 0, weightDecay: Float = 0) {
        let trainable = trainable ?? .all(params)
        self.momentum = momentum; self.weightDecay = weightDecay
        CheckedAllocation.probe(floats: trainable.count, for: "SGD's momentum of \(trainable.count) parameters")
        buf = [Float](repeating: 0, count: trainable.count)
        spans = optimizerSpans(params, trainable: trainable)
    }

    public func step(params: ParameterStore, lr: Float, gradScale: Float = 1) {
        let p = params.values, g = params.grads
        for (range, decays, moment) in spans {
            let wd = decays ? weightDecay : 0
            for (k, i) in range.enumerated() {
                let b = moment + k
                buf[b] = momentum * buf[b] + g[i] * gradScale
                p[i] -= lr * (buf[b] + wd * p[i])
            }
        }
    }

    public var state: [String: [Float]] { ["momentum_buffer": buf] }

    public func restore(_ state: [String: [Float]]) throws {
        buf = try restoredArray(state, "momentum_buffer", count: buf.count)
    }
}
