import Foundation
import Models
import TensorCore

/// The trainer's own loss on held-out data, where TRL's trainers evaluate theirs: on held-out
/// preference pairs under dpo (TRL's `DPOTrainer`: `eval_loss` is the DPO loss;
/// `eval_rewards/*`, `eval_logps/*`, `eval_logits/*`, `eval_entropy`,
/// `eval_mean_token_accuracy` its diagnostics), and on rollouts of the held-out prompts under
/// grpo (TRL's `GRPOTrainer`: the GRPO loss, `eval_reward`, `eval_completions/*`, …;
/// `RolloutProducer+Evaluation.swift`), and on the held-out rows under gkd (TRL's `GKDTrainer`:
/// the divergence from the teacher), where a language-model NLL of the held-out answers
/// would sit beside a training loss on another scale. Loss and diagnostics are the
/// objective's, with every count global.
public struct ObjectiveEvaluation {
    public var objective: String
    public var loss: Double
    /// Each diagnostic's mean over the held-out set (pairs or loss tokens, as the objective
    /// counts it), and under grpo the rollouts' figures (`RolloutMetrics`), sorted by name.
    public var figures: [(name: String, value: Double)]

    public func figure(_ name: String) -> Double? { figures.first { $0.name == name }?.value }
}

extension Trainer {
    /// Every held-out pair once (chosen at 2i, rejected at 2i + 1, as `Dataset(pairsAt:)`),
    /// through the objective (dpo).
    /// Collective: every rank calls it with the same pairs.
    public func evaluatePairs(_ pairs: Dataset) -> ObjectiveEvaluation {
        var batch = PairProducer.batch(step: 0, pairs: Array(0..<pairs.pairCount), examples: pairs.examples)
        setup.precomputedReference?.applyEvaluated(to: &batch, examples: pairs.examples)
        return evaluateObjective(batch, temperature: 1)
    }

    /// grpo's and rloo's evaluation at `step` (`RolloutProducer.evaluationBatch`: the held-out prompts'
    /// rollouts at the current weights), through the objective at the rollout temperature,
    /// with the rollouts' figures beside the objective's; nil when the run evaluates the
    /// held-out NLL (another objective, or none to roll out). Collective.
    public func evaluateRollouts(step: Int, progress: ((_ phase: String, _ done: Int, _ total: Int) -> Void)? = nil) -> ObjectiveEvaluation? {
        guard let producer = source as? RolloutProducer else { return nil }
        try! estimateOptimalValuesIfNeeded()   // a2po: the held-out prompts' V* too (no stop check: it alone throws)
        let r = setup.recipe
        let p = StepPreparation(step: step, comm: comm, model: model, examples: setup.train.examples, tokenizer: setup.tokenizer,
                                seed: r.seed, microBatchSize: r.microBatchSize)
        guard let (batch, figures) = producer.evaluationBatch(p, progress: progress.map { show in { show("held-out rollouts", $0, $1) } })
        else { return nil }
        var result = evaluateObjective(batch, temperature: logitTemperature, progress: progress)
        result.figures = (result.figures + figures).sorted { $0.name < $1.name }
        return result
    }

    /// gkd's evaluation: the divergence from the teacher on the held-out rows' own completions,
    /// without sampling (TRL's GKDTrainer evaluates its `compute_loss`; the student's answers
    /// are drawn in `training_step` only); nil under another objective. Collective.
    public func evaluateDistillation(_ heldOut: Dataset) -> ObjectiveEvaluation? {
        guard objective is GKDObjective, heldOut.count > 0 else { return nil }
        return evaluateObjective(StepBatch(step: 0, sequences: heldOut.examples.enumerated().map { StepSequence(demonstration: $1, index: $0) }),
                                 temperature: 1)
    }

    /// kto's evaluation: every held-out labelled row once, with the mismatched pairs of the
    /// whole held-out set for its KL term (TRL's `KTOTrainer` evaluates its loss per eval batch);
    /// nil under another objective. Collective.
    public func evaluateUnpaired(_ rows: Dataset?) -> ObjectiveEvaluation? {
        guard let kto = objective as? KTOObjective, let rows, rows.count > 0 else { return nil }
        // Every row in file order: the rotation pairs each row as kl_pairing=fixed pairs it.
        var batch = UnpairedProducer.batch(step: 0, rows: Array(0..<rows.count), examples: rows.examples, mismatched: kto.estimatesKL,
                                           maxLength: Self.unpairedMaxLength(setup))
        setup.precomputedReference?.applyEvaluated(to: &batch, examples: rows.examples)
        return evaluateObjective(batch, temperature: 1)
    }

    /// The objective's loss and diagnostics on `batch`, dealt over ranks and micro-batches as
    /// a training step deals it, through the step's own forward (`Trainer.forward`) without
    /// dropout (transformers' `model.eval()` turns it off) and without gradients.
    /// `progress` hears (phase, sequences done, total): this rank's share scaled to all ranks.
    func evaluateObjective(_ batch: StepBatch, temperature: Float,
                           progress: ((_ phase: String, _ done: Int, _ total: Int) -> Void)? = nil) -> ObjectiveEvaluation {
        let (units, estimates) = Self.gradientAndEstimateUnits(batch)
        let micro = microBatches(batch.sequences, units: comm.shard.mine(units))
        let sequencesOf = micro.map(sequenceCount)
        let trained = units.reduce(0) { $0 + $1.count }
        var counts: [Int64] = [Int64(micro.reduce(0) { $0 + $1.lossTokens }), Int64(sequencesOf.reduce(0, +))]
        comm.allreduce(&counts, op: .sum)
        let r = setup.recipe
        var context = StepContext(step: batch.step, totalSteps: r.steps, globalLossTokens: Int(counts[0]),
                                  globalSequences: Int(counts[1]), seed: r.seed)
        context.logitTemperature = temperature
        context.onPolicy = batch.onPolicy
        // grpo's top_entropy_quantile ranks the evaluation's own tokens, as a step ranks its own.
        if objective.requirements.statisticsPass {
            context.statistics = gatherStatistics(statisticsMicroBatches(batch, estimates: estimates, gradient: micro),
                                                  context: context, sequences: batch.sequences, dropout: false)
        }
        objective.beginStep(context)
        var total = ObjectiveResult(loss: 0)
        // The objective writes its gradient; evaluation never reads it, so one buffer serves all.
        var unused: [Float] = []
        var done = 0
        for (k, mb) in micro.enumerated() {
            let f = forward(mb, index: k, context: context, sequences: batch.sequences, tape: Tape(recording: false), dropout: false)
            let n = f.input.rows * f.input.vocab
            if unused.count < n { unused = [Float](repeating: 0, count: n) }
            let result = withExtendedLifetime(f) {
                unused.withUnsafeMutableBufferPointer { objective.lossAndGradient(f.input, dlogits: $0.baseAddress!) }
            }
            total = merge(total, result)
            done += sequencesOf[k]
            progress?("held-out \(objective.name) loss", min(done * comm.size, trained), trained)
        }
        let (sums, names) = reduceScalars(loss: total.loss, bad: false, diag: total.diagnostics, counts: total.diagnosticCounts)
        let figures = names.enumerated().map { i, name -> (name: String, value: Double) in
            let count = sums[2 + names.count + i]
            return (name, count > 0 ? sums[2 + i] / count : .nan)
        }
        return ObjectiveEvaluation(objective: objective.name, loss: sums[0],
                                   figures: (figures + objective.derivedFigures(figures.map { ($0.name, $0.value) }).map { (name: $0.0, value: $0.1) })
                                       .sorted { $0.name < $1.name })
    }
}
