/// Reverse-mode autograd as a tape of backward closures.
///
/// Every op appends its backward kernel when it runs; ops run in dependency order, so the
/// reversed tape is a valid topological order and no graph search is needed (the micrograd
/// idea, at the granularity of fused layers rather than scalars). Backward kernels
/// accumulate (`+=`) into gradient buffers, as in llm.c, so a tensor used twice (tied
/// embeddings, residual streams) gets the sum of its uses.
///
/// With an `Arena`, op outputs live in it and each output's gradient goes back to the
/// arena's pool right after the op's backward kernel has run (its consumers ran earlier).
public final class Tape {
    private var backwards: [() -> Void] = []
    private var outputs: [Tensor?] = []
    /// False under `withoutGrad`: ops then record nothing (evaluation, generation, scoring).
    public private(set) var recording: Bool
    public let arena: Arena?

    public init(recording: Bool = true, arena: Arena? = nil) {
        self.recording = recording
        self.arena = arena
    }

    /// An op's output: from the arena (uninitialised) when the tape has one, else a fresh
    /// zero-filled tensor. The op must write every element.
    public func output(_ shape: [Int]) -> Tensor {
        if let arena { return Tensor(arena: arena, shape: shape) }
        return Tensor(zeros: shape)
    }

    /// Like `record(_:_:)`, and `output`'s gradient is released after `backward` has run.
    public func record(_ inputs: [Tensor], output: Tensor, _ backward: @escaping () -> Void) -> Bool {
        guard recording, inputs.contains(where: { $0.requiresGrad }) else { return false }
        backwards.append(backward)
        outputs.append(output)
        return true
    }

    /// Ops call this with their backward kernel when any input needs a gradient.
    public func record(_ inputs: [Tensor], _ backward: @escaping () -> Void) -> Bool {
        guard recording, inputs.contains(where: { $0.requiresGrad }) else { return false }
        backwards.append(backward)
        outputs.append(nil)
        return true
    }

    public var count: Int { backwards.count }

    /// Called during backward with a flat parameter range whose gradients are final (see
    /// `markParametersReady`), so the trainer can start reducing it while backward goes on.
    public var onParametersReady: ((Range<Int>) -> Void)?
    /// Called after every backward kernel: lets outstanding communication make progress
    /// (Open MPI 4 advances non-blocking collectives only inside MPI calls).
    public var onBackwardStep: (() -> Void)?

    /// Marks, in the forward pass, the start of the ops that are the only users of the
    /// parameters in `range` (a transformer block). Backward runs in reverse, so when it gets
    /// back to this mark every op recorded after it has run: those gradients are complete.
    public func markParametersReady(_ range: Range<Int>) {
        guard recording else { return }
        backwards.append { [unowned self] in self.onParametersReady?(range) }
        outputs.append(nil)
    }

    /// Seeds `output.grad` with `seed` (dL/d output) and runs the tape in reverse.
    public func backward(from output: Tensor, seed: UnsafePointer<Float>) {
        let g = output.grad
        Vec.add(g, seed, count: output.count)
        runBackward()
    }

    /// Runs the tape in reverse when the gradients it starts from were already accumulated
    /// (the fused LM head + loss seeds the final hidden state's gradient itself).
    public func backward() { runBackward() }

    /// Backward from a scalar output with dL/d output = 1.
    public func backward(from scalar: Tensor) {
        precondition(scalar.count == 1, "backward(from:) needs a scalar")
        scalar.grad[0] += 1
        runBackward()
    }

    private func runBackward() {
        for i in stride(from: backwards.count - 1, through: 0, by: -1) {
            backwards[i]()
            outputs[i]?.releaseGrad()
            onBackwardStep?()
        }
        reset()
    }

    /// Forgets recorded ops (after a forward pass whose backward is not needed).
    public func reset() {
        backwards.removeAll(keepingCapacity: true)
        outputs.removeAll(keepingCapacity: true)
    }

    public func withoutGrad<T>(_ body: () throws -> T) rethrows -> T {
        let was = recording
        recording = false
        defer { recording = was }
        return try body()
    }
}
