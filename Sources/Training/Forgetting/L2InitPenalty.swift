import TensorCore

/// `--l2-init λ`: the penalty λ/2·‖θ − θ₀‖² towards the initial weights θ₀ (L2-SP, Li,
/// Grandvalet & Davoine 2018, arXiv 1802.01483; the "L2 regularization" baseline against
/// forgetting in "SFT Doesn't Always Hurt General Capabilities", arXiv 2509.20758, §5). Its
/// gradient λ(θ − θ₀) is added to the summed data gradient of the trainable ranges before the
/// norm, clipping and the optimizer, so no extra forward pass runs; it is the same on every
/// rank (θ and θ₀ are replicated), so losses stay independent of the rank count.
///
/// θ₀ is a `ParameterSnapshot` (state `l2_init_anchor`) taken when the trainer is made, and
/// is saved in every checkpoint rather than re-read from `--model` on resume: the model
/// directory may have changed (or been overwritten by a run writing into it), while a
/// checkpoint must hold everything the rest of the run depends on.
public final class L2InitPenalty {
    public let lambda: Float
    let anchor: ParameterStore
    public let snapshot: ParameterSnapshot

    public init(lambda: Float, initial: ParameterStore) {
        self.lambda = lambda
        anchor = ParameterStore(layout: initial.entries.map { ($0.name, $0.shape) })
        precondition(anchor.count == initial.count, "L2InitPenalty: layout differs from the model's")
        anchor.values.update(from: initial.values, count: initial.count)
        snapshot = ParameterSnapshot("l2_init_anchor", parameters: anchor)
    }

    /// Adds λ(θ − θ₀) to the gradients of `ranges`; returns the penalty λ/2·‖θ − θ₀‖² there.
    @discardableResult
    public func addGradient(_ params: ParameterStore, ranges: [Range<Int>]) -> Double {
        let p = params.values, g = params.grads, a = anchor.values
        var squares = 0.0
        for r in ranges {
            for i in r {
                let d = p[i] - a[i]
                g[i] += lambda * d
                squares += Double(d) * Double(d)
            }
        }
        return 0.5 * Double(lambda) * squares
    }
}
