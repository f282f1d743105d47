import TensorCore

/// The trainable gradients zeroed inside the optimizer's pass instead of in a pass of their
/// own before the next step: AdamW reads each gradient element once and can write the zero
/// back while the cache line is at hand (`OptimizerKernels.adamw(clearing:)`). The values the
/// next step accumulates into are zero either way, so losses are unchanged bit for bit.
extension Trainer {
    /// Clipping + the optimizer over the trainable ranges. With `clearGradientsInUpdate`, plain
    /// AdamW also leaves those gradients at zero; ZeRO's AdamW reads its shard, not the full
    /// buffer, so it does not.
    func applyOptimizer(lr: Float, gradScale: Float) {
        if clearGradientsInUpdate, zero == nil, let clearing = optimizer as? GradientClearingOptimizer {
            clearing.stepClearingGradients(params: model.parameters, lr: lr, gradScale: gradScale)
            gradientsCleared = true
        } else {
            optimizer.step(params: model.parameters, lr: lr, gradScale: gradScale)
        }
    }

    /// Before a step's first micro-batch: zeroes the trainable gradients unless the last
    /// update already did (a skipped step, SGD, ZeRO and the first step zero them here).
    func zeroGradientsUnlessCleared() {
        defer { gradientsCleared = false }
        if !gradientsCleared { zeroGradients() }
    }
}
