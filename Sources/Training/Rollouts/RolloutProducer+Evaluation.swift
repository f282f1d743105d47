import Distributed
import Foundation
import Models
import TensorCore

/// grpo's and rloo's evaluation, as TRL's `GRPOTrainer` and `RLOOTrainer` evaluate (their
/// `prediction_step`: each held-out prompt repeated `num_generations_eval` times, completions
/// sampled as in training, scored, advantages formed — group or leave-one-out, as in training —
/// and the objective's loss computed on them with no update, so the importance ratio is 1): `eval_loss` is that loss, and the rollouts' figures are logged as
/// training logs them, under `eval_` (`eval_reward`, `eval_rewards/NAME/mean`,
/// `eval_completions/mean_length`, …; the objective's `eval_entropy`, `eval_clip_ratio/*`,
/// `eval_kl`). The prompts are the first `eval_examples` held-out rows with a prompt;
/// `eval_rollouts` (TRL's `num_generations_eval`) rollouts each, from streams of their own,
/// a pure function of (seed, step): an evaluation draws the same rollouts under any rank
/// count and after a resume, and takes nothing from the training draws.
extension RolloutProducer {
    /// The held-out prompts for `setup`'s evaluations, checked at start-up as training
    /// prompts are (fitted to `limit`, a reference where a reward needs one, a task prompt for
    /// the task reward): the first `eval_examples` that fit (`--truncation drop` leaves the
    /// others out before counting); none when the run evaluates the held-out NLL (another
    /// objective than grpo or rloo, `eval_rollouts 0`, `eval_examples 0`). An `eval_rollouts` set
    /// above 0 with no held-out prompt to roll out is refused, as a key that would do nothing.
    func prepareEvaluation(_ setup: RunSetup, limit: Int, maxLengthBinds: Bool) throws {
        let r = setup.recipe
        let perPrompt = r.rolloutsPerEvaluationPrompt(setup.objective)
        guard perPrompt > 0, let policyObjective = setup.objective as? RolloutPolicyObjective else { return }
        let trainer = policyObjective.trainerName
        evaluatedBy = (setup.objective.name, trainer)
        let raw = RolloutPrompts.fromExamples(setup.heldOut.examples.filter(\.hasPrompt))
        guard !raw.isEmpty else {
            guard r.evalRollouts > 0 else { return }
            let why = setup.heldOut.count == 0 ? "there is no held-out set (heldout_fraction 0 and no --heldout)" : "no held-out row has a prompt ({text} rows)"
            throw RecipeError("\(r.named(Recipe.declared.evalRollouts)) \(r.evalRollouts) rolls out the held-out rows' prompts, and \(why): here it would have no effect")
        }
        do {
            // Fitted before counting, so that --truncation drop takes the first eval_examples that fit.
            let fitted = try RolloutPrompts.fit(raw, limit: limit, truncation: r.truncation, origin: "the held-out rows")
            evaluationPrompts = Array(fitted.prefix(r.evalExamples))
            if r.truncation == .drop {   // those passed over on the way to the first eval_examples that fit
                var kept = 0
                for p in raw where kept < r.evalExamples { if p.ids.count > limit { evaluationDropped += 1 } else { kept += 1 } }
            }
            try RolloutPrompts.checkCutPrompts(Array(raw.prefix(r.evalExamples)), limit: limit, truncation: r.truncation, rewards: rewards,
                                               tokenizer: setup.tokenizer, maxLengthBinds: maxLengthBinds, contextReason: setup.model.contextReason)
            try RolloutPrompts.checkDefaultCut(Array(raw.prefix(r.evalExamples)), limit: limit, truncationGiven: r.truncationGiven, origin: "the held-out rows")
            try RolloutPrompts.checkReferences(evaluationPrompts, rewards: rewards)
            try RolloutPrompts.checkTaskPrompts(evaluationPrompts, rewards: rewards, tokenizer: setup.tokenizer)
        } catch {
            throw DataError("\(error) (\(setup.objective.name) evaluates by rolling out the held-out prompts, as TRL's \(trainer): --eval-rollouts 0 evaluates their NLL instead)")
        }
        evaluationRollouts = perPrompt
        try Self.checkEvaluationMemory(prompts: evaluationPrompts, rollouts: perPrompt, completion: settings.maxCompletionLength)
    }

    /// What the evaluations do, for the run's log (nil: the held-out NLL).
    public var evaluationSummary: String? {
        let g = evaluationRollouts, n = evaluationPrompts.count
        guard g > 0 else { return nil }
        return "evaluation: \(evaluatedBy.objective)'s loss and rewards on \(g) rollout\(g == 1 ? "" : "s") of each of \(n) held-out prompt\(n == 1 ? "" : "s"), as TRL's \(evaluatedBy.trainer) evaluates (--eval-rollouts; 0: their NLL)"
            + (evaluationDropped > 0 ? "; \(evaluationDropped) longer than the context minus max_completion_length left out (--truncation drop)" : "")
    }

    /// Whether `setup`'s evaluations roll out held-out prompts (grpo or rloo with `eval_rollouts` and
    /// `eval_examples` above 0, and held-out rows with a prompt), as `prepareEvaluation` decides.
    static func evaluatesRollouts(_ setup: RunSetup) -> Bool {
        setup.recipe.rolloutsPerEvaluationPrompt(setup.objective) > 0 && setup.heldOut.examples.contains(where: \.hasPrompt)
    }

    /// An evaluation holds its N × G rollouts as a generation does (about 24 bytes per token:
    /// `checkGenerationMemory`); one that cannot fit is refused at start-up (exit 5), naming the
    /// two keys, where 20,000 prompts × 4,096 rollouts grew to the memory's end at the first evaluation.
    static func checkEvaluationMemory(prompts: [RolloutPrompt], rollouts: Int, completion: Int,
                                      available: Int? = MemoryBudget.availableBytes()) throws {
        let tokens = prompts.reduce(0) { $0 + $1.ids.count + completion }
        let (perToken, o1) = rollouts.multipliedReportingOverflow(by: 24)
        let (bytes, o2) = tokens.multipliedReportingOverflow(by: perToken)
        let overflow = o1 || o2
        guard let available, overflow || bytes > available else { return }
        throw ModelError("out of memory: an evaluation of \(prompts.count) held-out prompts × \(rollouts) rollouts (eval_examples × eval_rollouts, up to max_completion_length \(completion) tokens each) needs about \(CheckedAllocation.describe(bytes: overflow ? Int.max : bytes)), more than the \(CheckedAllocation.describe(bytes: available)) available (a smaller --eval-examples or --eval-rollouts)", outOfMemory: true)
    }

    /// Every evaluation prompt's `evaluationRollouts` rollouts at the weights of `p.model`,
    /// scored, with their advantages as training forms them (collective; the same batch on every rank), and
    /// the rollout figures of `RolloutMetrics` but `accuracy` (`eval_accuracy` is the greedy
    /// answers' exact match). Nil when the run evaluates the held-out NLL. Generated 256 rollouts
    /// per rank at a time, each chunk reported to `progress` (on every rank: done, total).
    public func evaluationBatch(_ p: StepPreparation, progress: ((Int, Int) -> Void)? = nil) -> (batch: StepBatch, figures: [(String, Double)])? {
        guard !evaluationPrompts.isEmpty else { return nil }
        let r = rollOut(Array(evaluationPrompts.indices), of: evaluationPrompts, rollouts: evaluationRollouts, plan: nil,
                        grouped: nil, seed: settings.evaluationSeed(p.step), firstGroup: 0, p,
                        chunk: 256 * p.comm.size, progress: progress)
        let figures = RolloutMetrics.rows(r.sequences, rewards: rewards, groupSize: evaluationRollouts, stopIds: stopIds,
                                          aggregation: settings.aggregation)
            .filter { $0.0 != "accuracy" } + r.figures
            + (optimalValues != nil ? [("v_star", Self.meanOptimalValue(r.sequences, of: evaluationPrompts))] : [])
        var batch = StepBatch(step: p.step, sequences: r.sequences)
        batch.onPolicy = true   // sampled by the weights being evaluated
        return (batch, figures)
    }
}

extension Recipe {
    /// Rollouts per held-out prompt in an evaluation of a run with `objective`: `eval_rollouts`
    /// (−1: `rollouts`, or the objective's own count, a2po's 1) under grpo's or rloo's sampling with
    /// `eval_examples` > 0; 0 (the held-out NLL) otherwise.
    public func rolloutsPerEvaluationPrompt(_ objective: Objective) -> Int {
        guard objective is RolloutPolicyObjective, samplesRollouts(objective), self.evalExamples > 0 else { return 0 }
        return self.evalRollouts < 0 ? objective.requirements.rolloutsPerPrompt ?? self.rollouts : self.evalRollouts
    }
}
