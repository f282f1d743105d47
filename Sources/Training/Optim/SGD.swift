import TensorCore

/// SGD with optional heavy-ball momentum and decoupled weight decay:
///   b ← μ·b + g,  θ ← θ − lr·(b + λ·θ)   (λ only on matrices).
public final class SGD: Optimizer {
    public let name = "sgd"
    public let momentum: Float, weightDecay: Float
    private var buf: [Float]
    private let decay: [Bool]

    public init(params: ParameterStore, momentum: Float = 0, weightDecay: Float = 0) {
        self.momentum = momentum; self.weightDecay = weightDecay
        buf = [Float](repeating: 0, count: params.count)
        var d = [Bool](repeating: false, count: params.count)
        for r in decayRanges(params) { for i in r { d[i] = true } }
        decay = d
    }

    public func step(params: ParameterStore, lr: Float) {
        let p = params.values, g = params.grads
        for i in 0..<params.count {
            buf[i] = momentum * buf[i] + g[i]
            p[i] -= lr * (buf[i] + (decay[i] ? weightDecay * p[i] : 0))
        }
    }

    public var state: [String: [Float]] { ["momentum_buffer": buf] }

    public func restore(_ state: [String: [Float]]) throws {
        buf = try restoredArray(state, "momentum_buffer", count: buf.count)
    }
}
