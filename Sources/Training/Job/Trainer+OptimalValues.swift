import Distributed
import Foundation

extension Trainer {
    /// a2po's first stage (`OptimalValues`): V* of every prompt from the reference's samples,
    /// unless a checkpoint restored them (then false). `TrainingJob` calls it after resuming,
    /// before the first step, so the pass is not timed as a step; `prepare` and the rollout
    /// evaluation call it too, for callers that step a trainer directly. With `stop`, a stop
    /// signal ends stage 1 (`ScoringStopped`), as it ends the other passes before the first step.
    @discardableResult
    func estimateOptimalValuesIfNeeded(stop: (() -> Bool)? = nil) throws(ScoringStopped) -> Bool {
        guard let producer = source as? RolloutProducer, let values = producer.optimalValues, !values.ready else { return false }
        guard let reference = setup.referenceModel else { preconditionFailure("objective \(objective.name) needs the reference model loaded") }
        let progress = comm.isCoordinator ? show.map { EvalProgress(label: objective.name, show: $0) } : nil
        try values.estimate(reference: reference, comm: comm, tokenizer: setup.tokenizer, seed: setup.recipe.seed,
                            microBatchSize: setup.recipe.microBatchSize, progress: { done, total in
            progress?.update("reference samples scored (stage 1)", done: done, total: total)
        }, stop: stop)
        Fatal.agree(producer.prompts.isEmpty
                    ? "objective \(objective.name): every training prompt's \(values.samples) reference samples scored 0 in total, and filter_all_incorrect leaves such prompts out (as TRL's A2POTrainer): none is left to train on; use prompts the reference sometimes solves, or --objective-arg filter_all_incorrect=false"
                    : nil, code: Fatal.Code.input)
        return true
    }
}
