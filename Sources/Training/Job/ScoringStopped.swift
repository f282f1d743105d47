/// A stop signal (SIGUSR1, `StopSignal`) that every rank agreed on during a scoring pass before
/// the first step (`Trainer.scoreInGroups` asks after each round, a2po's stage 1 after each chunk
/// of prompts, `OptimalValues.estimate`): the pass ends there, and the
/// run with it, before any step — nothing to checkpoint. Without this the pass went on to its
/// end and the run stopped after the step that follows, though neither the scores of
/// `--precompute-ref-log-probs` nor a step begun on them outlive the job: a resumed run scores
/// again.
struct ScoringStopped: Error {
    /// The pass (`scoreInGroups`' `what`), and how far it got: sequences done of its set's total.
    let what: String
    let done: Int, total: Int
}
