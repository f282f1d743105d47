import TensorCore

/// An optimizer updates the flat parameter buffer from the flat (already allreduced and
/// clipped) gradient buffer. Every rank runs it identically, so replicas stay bit-equal.
public protocol Optimizer: AnyObject {
    var name: String { get }
    func step(params: ParameterStore, lr: Float)
    /// Moments and step count, for checkpoints.
    var state: [String: [Float]] { get }
    func restore(_ state: [String: [Float]]) throws
}

/// Which parameters get weight decay: matrices yes; biases, norm gains and nothing else
/// (the usual GPT-2 / nanoGPT split). As flat ranges, so the update loop stays flat.
func decayRanges(_ params: ParameterStore) -> [Range<Int>] {
    params.entries.filter { $0.shape.count >= 2 }.map { $0.offset..<($0.offset + $0.count) }
}

/// Global L2 norm of the gradient buffer (identical on every rank after the allreduce),
/// accumulated in Double per 4096-element block, so the value is the same whatever the
/// thread count.
public func gradientNorm(_ params: ParameterStore) -> Double {
    OptimizerKernels.norm(params.grads, count: params.count)
}

/// Scales gradients so their global norm is at most `maxNorm` (after the allreduce, so the
/// decision is the same on every rank). Returns the scale applied.
@discardableResult
public func clipGradients(_ params: ParameterStore, norm: Double, maxNorm: Double) -> Float {
    guard maxNorm > 0, norm > maxNorm else { return 1 }
    let scale = Float(maxNorm / (norm + 1e-6))
    OptimizerKernels.scale(params.grads, count: params.count, by: scale)
    return scale
}
