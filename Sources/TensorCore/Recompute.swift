/// Activation checkpointing (Chen et al., arXiv 1604.06174, sec. 3): a block's forward runs
/// without keeping its intermediate activations (they live in `scratch`, reused block after
/// block); only its input and output stay in the tape's arena. Backward re-runs the block's
/// forward on a recording sub-tape over `scratch`, seeds its output with the gradient that
/// reached the kept output, and back-propagates through it into the input's and the
/// parameters' gradients. The recomputed forward is the same kernels on the same inputs,
/// so the gradients are the ones the ordinary tape gives, bit for bit.
extension Tape {
    /// `block` must be a pure function of its input (and of parameters `parameters`): no
    /// randomness, no state, since it runs twice.
    public func recomputed(_ input: Tensor, parameters: [Tensor], scratch: Arena,
                           _ block: @escaping (Tape, Tensor) -> Tensor) -> Tensor {
        scratch.reset()
        let kept = Tape(recording: false, arena: scratch)
        let y = block(kept, input)
        let out = output(y.shape)
        out.data.update(from: y.data, count: y.count)
        out.requiresGrad = record([input] + parameters, output: out) { [unowned self] in
            scratch.reset()
            let sub = Tape(recording: true, arena: scratch)
            sub.onBackwardStep = self.onBackwardStep
            let again = block(sub, input)
            sub.backward(from: again, seed: out.grad)
        }
        return out
    }
}
