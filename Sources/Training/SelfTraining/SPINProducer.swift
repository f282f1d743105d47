import Distributed
import Foundation
import Models
import TensorCore

/// The step producer of `--objective spin` (Chen et al., arXiv 2401.01335, §4; `SPINObjective`):
/// each step the uniform sampler picks `batch_size` training rows; the opponent — the model frozen
/// at the start of the current iteration, which is the trainer's old-policy snapshot — answers
/// their prompts (sampled on all ranks by `ShardedGeneration`, at `temperature`, prompt i of step s
/// from stream (seed(s), i), so any rank count gets the same answers); each row enters the batch
/// as a pair linked like `PairProducer`'s: the gold answer chosen, the opponent's rejected. SPIN
/// generates an iteration's answers offline before training on them; with a frozen opponent and
/// per-step seeds, generating each batch's answers when it is drawn gives the same distribution.
/// Two differences from SPIN's code: iteration t trains on its own opponent's answers only (the
/// code trains on the union of iterations t − 1 and t), and a row drawn twice in an iteration
/// gets two sampled answers (the code's one offline answer per prompt).
/// Nothing of its own lives across steps: the opponent is checkpointed as `old_policy`.
public final class SPINProducer: StepProducer {
    public let name = "spin"
    let source: BatchSource
    let prompts: [SelfTrainPrompt?]
    let iterationSteps: Int
    let temperature: Float
    let maxNewTokens: Int
    let maxLength: Int
    /// The trainer's old-policy snapshot (`TrainingJob` links it once the trainer exists).
    var opponent: LanguageModel?

    init(source: BatchSource, prompts: [SelfTrainPrompt?], iterationSteps: Int, temperature: Float, maxNewTokens: Int, maxLength: Int) {
        self.source = source; self.prompts = prompts; self.iterationSteps = iterationSteps
        self.temperature = temperature; self.maxNewTokens = maxNewTokens; self.maxLength = maxLength
    }

    public func prepare(_ p: StepPreparation) -> StepBatch {
        // The snapshot is refreshed after the producer runs, so on an iteration's first step the
        // opponent is the model as it is now.
        let model = p.step % iterationSteps == 0 ? p.model : (opponent ?? p.model)
        let rows = source.batch(step: p.step).filter { prompts[$0] != nil }
        let options = SamplingOptions(maxNewTokens: maxNewTokens, temperature: temperature, stopIds: Evaluator.stopIds(p.tokenizer, model: p.model))
        var mix = SplitMix64(seed: p.seed ^ 0x5B1D_0000 ^ UInt64(p.step))
        let answers = ShardedGeneration.generate(model, prompts: rows.map { prompts[$0]!.ids }, options: options,
                                                 seed: mix.next(), comm: p.comm)
        var sequences: [StepSequence] = []
        for (k, i) in rows.enumerated() {
            let prompt = prompts[i]!, g = answers[k]
            var row = g.finish == .stop ? prompt.row(answer: g.ids) : PseudoRow(ids: prompt.ids + g.ids, promptLength: prompt.ids.count, example: i)
            if row.ids.count > maxLength { row.ids = Array(row.ids.prefix(maxLength)) }
            var chosen = StepSequence(demonstration: p.examples[i], index: i)
            var rejected = row.sequence
            rejected.origin = .rollout
            chosen.pair = sequences.count + 1; chosen.pairRole = .chosen
            rejected.pair = sequences.count; rejected.pairRole = .rejected
            sequences += [chosen, rejected]
        }
        return StepBatch(step: p.step, sequences: sequences)
    }

    public var state: [UInt64] { source.state }
    public func restore(_ state: [UInt64]) throws { try source.restore(state) }
}
