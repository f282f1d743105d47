/// Reverse-mode autograd as a tape of backward closures.
///
/// Every op appends its backward kernel when it runs; ops run in dependency order, so the
/// reversed tape is a valid topological order and no graph search is needed (the micrograd
/// idea, at the granularity of fused layers rather than scalars). Backward kernels
/// accumulate (`+=`) into gradient buffers, as in llm.c, so a tensor used twice (tied
/// embeddings, residual streams) gets the sum of its uses.
public final class Tape {
    private var backwards: [() -> Void] = []
    /// False under `withoutGrad`: ops then record nothing (evaluation, generation, scoring).
    public private(set) var recording: Bool

    public init(recording: Bool = true) { self.recording = recording }

    /// Ops call this with their backward kernel when any input needs a gradient.
    public func record(_ inputs: [Tensor], _ backward: @escaping () -> Void) -> Bool {
        guard recording, inputs.contains(where: { $0.requiresGrad }) else { return false }
        backwards.append(backward)
        return true
    }

    public var count: Int { backwards.count }

    /// Seeds `output.grad` with `seed` (dL/d output) and runs the tape in reverse.
    public func backward(from output: Tensor, seed: UnsafePointer<Float>) {
        let g = output.grad
        for i in 0..<output.count { g[i] += seed[i] }
        runBackward()
    }

    /// Backward from a scalar output with dL/d output = 1.
    public func backward(from scalar: Tensor) {
        precondition(scalar.count == 1, "backward(from:) needs a scalar")
        scalar.grad[0] += 1
        runBackward()
    }

    private func runBackward() {
        for fn in backwards.reversed() { fn() }
        backwards.removeAll(keepingCapacity: true)
    }

    /// Forgets recorded ops (after a forward pass whose backward is not needed).
    public func reset() { backwards.removeAll(keepingCapacity: true) }

    public func withoutGrad<T>(_ body: () throws -> T) rethrows -> T {
        let was = recording
        recording = false
        defer { recording = was }
        return try body()
    }
}
