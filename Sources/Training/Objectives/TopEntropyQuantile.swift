import Foundation
import TensorCore

/// TRL's `top_entropy_quantile` ρ (Wang et al., "Beyond the 80/20 Rule: High-Entropy Minority
/// Tokens Drive Effective Reinforcement Learning for LLM Reasoning", arXiv 2506.01939, §5): the
/// policy-gradient term is kept only on the tokens whose entropy is at least τ, the (1 − ρ)
/// quantile of the loss tokens' entropies (linear interpolation between order statistics, as
/// `torch.quantile`); the KL term, the normalisers and the clip figures keep every token, as
/// TRL's `per_token_loss * entropy_mask` before `+ β·kl`. ρ = 0.2 is the paper's choice; ρ = 0
/// keeps the highest-entropy token only.
///
/// TRL takes the quantile over one micro-batch of every process (`get_high_entropy_mask`), so
/// its τ changes with gradient accumulation; here it is over the whole step batch, all ranks and
/// micro-batches (the statistics pass: entropies of softmax(z/T), gathered once, the keep decision
/// made from them and never re-derived from recomputed logits), which is TRL's with one
/// micro-batch per rank and the same at any rank count. grpo and gmpo (its geometric mean over
/// the kept tokens) each keep ρ and the step's selection here.
final class TopEntropyQuantile {
    /// ρ (1: every token, no statistics pass).
    let rho: Float
    private let cache = StepCache<EntropySelection>()

    init(_ rho: Float) { self.rho = rho }

    /// (sequence id, position among its rows, entropy) of every loss row of this micro-batch.
    func statistics(_ input: ObjectiveInput) -> [Float] {
        rho < 1 ? EntropySelection.statistics(input) : []
    }

    /// τ, the (1 − ρ) quantile of the step's entropies as `torch.quantile` interpolates it,
    /// and the tokens at or above it.
    static func select(_ context: StepContext, quantile rho: Float) -> EntropySelection {
        let tokens = EntropySelection.tokens(context)
        guard !tokens.isEmpty else { return EntropySelection(tokens, tau: .infinity) }
        let sorted = tokens.map(\.entropy).sorted()
        let at = Double(1 - rho) * Double(sorted.count - 1), below = Int(at.rounded(.down))
        let above = min(below + 1, sorted.count - 1), fraction = Float(at - Double(below))
        return EntropySelection(tokens, tau: sorted[below] + (sorted[above] - sorted[below]) * fraction)
    }

    func beginStep(_ context: StepContext) {
        guard rho < 1 else { return }
        cache.store(context) { Self.select($0, quantile: rho) }
    }

    /// The step's selection (ρ < 1).
    func selection(_ context: StepContext, objective name: String) -> EntropySelection {
        cache.value(context, objective: name) { Self.select($0, quantile: rho) }
    }

    /// Per row of `input`, whether it is kept; nil when every token is (ρ = 1).
    func keptRows(_ input: ObjectiveInput, objective name: String) -> [Bool]? {
        guard rho < 1 else { return nil }
        let selection = selection(input.context, objective: name)
        let index = SequenceIndex(input.sequenceId)
        return (0..<input.rows).map { r in input.mask[r] != 0 && selection.keeps(input, row: r, position: index.position[r]) }
    }
}

extension GRPOObjective {
    public func statistics(_ input: ObjectiveInput) -> [Float] { highEntropy.statistics(input) }
    public func beginStep(_ context: StepContext) { highEntropy.beginStep(context) }

    /// Per row of `input`, whether its PPO term counts; nil when every token's does (ρ = 1).
    func highEntropyRows(_ input: ObjectiveInput) -> [Bool]? { highEntropy.keptRows(input, objective: name) }
}
