import Distributed
import Foundation
import Models
import TensorCore

/// grpo's evaluation, as TRL's `GRPOTrainer` evaluates (its `prediction_step`: each held-out
/// prompt repeated `num_generations_eval` times, completions sampled as in training, scored,
/// group advantages formed, and the GRPO loss computed on them with no update, so the
/// importance ratio is 1): `eval_loss` is that loss, and the rollouts' figures are logged as
/// training logs them, under `eval_` (`eval_reward`, `eval_rewards/NAME/mean`,
/// `eval_completions/mean_length`, …; the objective's `eval_entropy`, `eval_clip_ratio/*`,
/// `eval_kl`). The prompts are the first `eval_examples` held-out rows with a prompt;
/// `eval_rollouts` (TRL's `num_generations_eval`) rollouts each, from streams of their own,
/// a pure function of (seed, step): an evaluation draws the same rollouts under any rank
/// count and after a resume, and takes nothing from the training draws.
extension RolloutProducer {
    /// The held-out prompts for `setup`'s evaluations, checked at start-up as training
    /// prompts are (fitted to `limit`, a reference where a reward needs one, a task prompt for
    /// the task reward); none when the run evaluates the held-out NLL: another objective than
    /// grpo, `eval_rollouts 0` or `eval_examples 0`.
    func prepareEvaluation(_ setup: RunSetup, limit: Int, maxLengthBinds: Bool) throws {
        let r = setup.recipe
        let perPrompt = r.evalRollouts < 0 ? settings.rollouts : r.evalRollouts
        guard setup.objective is GRPOObjective, perPrompt > 0, r.evalExamples > 0 else { return }
        let rows = setup.heldOut.examples.filter { $0.promptLength > 0 }.prefix(r.evalExamples)
        guard !rows.isEmpty else { return }
        let raw = RolloutPrompts.fromExamples(Array(rows))
        do {
            try RolloutPrompts.checkCutPrompts(raw, limit: limit, truncation: r.truncation, rewards: rewards, tokenizer: setup.tokenizer,
                                               maxLengthBinds: maxLengthBinds, contextReason: setup.model.contextReason)
            evaluationPrompts = try RolloutPrompts.fit(raw, limit: limit, truncation: r.truncation, origin: "the held-out rows")
            try RolloutPrompts.checkReferences(evaluationPrompts, rewards: rewards)
            try RolloutPrompts.checkTaskPrompts(evaluationPrompts, rewards: rewards, tokenizer: setup.tokenizer)
        } catch {
            throw DataError("\(error) (grpo evaluates by rolling out the held-out prompts, as TRL's GRPOTrainer: --eval-rollouts 0 evaluates their NLL instead)")
        }
        evaluationRollouts = perPrompt
    }

    /// Every evaluation prompt's `evaluationRollouts` rollouts at the weights of `p.model`,
    /// scored, with their group advantages (collective; the same batch on every rank), and
    /// the rollout figures of `RolloutMetrics` but `accuracy` (`eval_accuracy` is the greedy
    /// answers' exact match). Nil when the run evaluates the held-out NLL.
    public func evaluationBatch(_ p: StepPreparation) -> (batch: StepBatch, figures: [(String, Double)])? {
        guard !evaluationPrompts.isEmpty else { return nil }
        let r = rollOut(Array(evaluationPrompts.indices), of: evaluationPrompts, rollouts: evaluationRollouts, plan: nil,
                        demonstrations: nil, seed: settings.evaluationSeed(p.step), firstGroup: 0, p)
        let figures = RolloutMetrics.rows(r.sequences, rewards: rewards, groupSize: evaluationRollouts, stopIds: stopIds)
            .filter { $0.0 != "accuracy" }
        return (StepBatch(step: p.step, sequences: r.sequences), figures)
    }
}

extension RolloutSettings {
    /// The seed of the evaluation at `step`'s streams, apart from every generation's.
    public func evaluationSeed(_ step: Int) -> UInt64 {
        var mix = SplitMix64(seed: seed ^ 0x4556_414C_524F_4C4C)   // "EVALROLL"
        mix.state &+= UInt64(step) &* 0x9E37_79B9_7F4A_7C15
        return mix.next()
    }
}
