import Foundation
import Models

/// ReLIFT's interleaving of RL and SFT steps (arXiv 2506.07527, §3, Algorithm 1;
/// `ReLIFTObjective` has the losses). Wraps the rollout producer: each trainer step is
///
/// - an SFT step when the buffer (`ReLIFTBuffer`) holds at least `sftDataSize` rows: their
///   demonstrations (the training rows as they are) are the step batch;
/// - else an RL step: the rollout producer's step number r = trainer step − SFT steps so far
///   (its generations and their seeds follow RL steps, so an SFT step never skips a
///   generation), and the prompts of each new generation that no rollout solved are pushed
///   to the buffer.
///
/// `--steps` counts both kinds. The buffer and the SFT-step count are checkpointed with the
/// rollout producer's state, so a resumed run continues exactly, buffer included.
/// Metrics: `relift_sft_step` (1 on an SFT step), `relift_buffer` (rows held after the step's
/// decision), `relift_buffered` (prompts pushed this step), `relift_sft_steps` (so far).
public final class ReLIFTProducer: ReportingProducer, StatefulComponent {
    public let name = "relift"
    public let stateName = "relift"
    public let rollouts: RolloutProducer
    /// The training rows (their demonstrations) and, per rollout prompt, its row.
    let examples: [Example]
    let exampleOfPrompt: [Int]
    public let sftDataSize: Int
    public private(set) var buffer = ReLIFTBuffer()
    public private(set) var sftSteps = 0
    public private(set) var stepFields: [(String, Any)] = []

    public init(rollouts: RolloutProducer, examples: [Example], sftDataSize: Int) {
        precondition(sftDataSize >= 1 && rollouts.prompts.allSatisfy { $0.example.map(examples.indices.contains) ?? false },
                     "ReLIFTProducer: prompts must be training rows")
        self.rollouts = rollouts; self.examples = examples; self.sftDataSize = sftDataSize
        exampleOfPrompt = rollouts.prompts.map { $0.example! }
    }

    /// From a recipe: the rollout producer's checks, and prompts that are `--data`'s rows
    /// (a buffered prompt trains on its row's completion).
    public convenience init(setup: RunSetup) throws {
        guard let objective = setup.objective as? ReLIFTObjective else {
            throw RecipeError("ReLIFTProducer needs objective relift, not \(setup.objective.name)")
        }
        guard setup.recipe.prompts == nil else {
            throw RecipeError("objective relift trains on the demonstrations of the prompts it fails: its prompts must be the training rows of --data, not --prompts")
        }
        let inner = try RolloutProducer(setup: setup)
        objective.rl.maxCompletionLength = inner.settings.maxCompletionLength
        self.init(rollouts: inner, examples: setup.train.examples,
                  sftDataSize: objective.sftDataSize ?? inner.settings.promptsPerStep)
    }

    public func prepare(_ p: StepPreparation) -> StepBatch {
        if let rows = buffer.pop(sftDataSize) {
            sftSteps += 1
            stepFields = [("relift_sft_step", 1.0), ("relift_buffer", Double(buffer.count)), ("relift_buffered", 0.0),
                          ("relift_sft_steps", Double(sftSteps)), ("expert_sequences", Double(rows.count))]
            return StepBatch(step: p.step, sequences: rows.map { StepSequence(demonstration: examples[$0], index: $0) })
        }
        let before = rollouts.generation?.index
        let rl = StepPreparation(step: p.step - sftSteps, comm: p.comm, model: p.model, examples: p.examples,
                                 tokenizer: p.tokenizer, seed: p.seed, microBatchSize: p.microBatchSize)
        var batch = rollouts.prepare(rl)
        batch.step = p.step
        var pushed = 0
        if let (index, sequences) = rollouts.generation, index != before {
            let s = rollouts.settings
            let failed = ReLIFTBuffer.failedPrompts(sequences.prefix(s.batchSize * s.stepsPerGeneration), groupSize: s.rollouts)
            // Rollout i of prompt position j answers prompt `sequences[j·G].example`.
            buffer.pushFront(failed.map { exampleOfPrompt[sequences[$0 * s.rollouts].example] })
            pushed = failed.count
        }
        stepFields = rollouts.stepFields + [("relift_sft_step", 0.0), ("relift_buffer", Double(buffer.count)),
                                            ("relift_buffered", Double(pushed)), ("relift_sft_steps", Double(sftSteps))]
        return batch
    }

    // MARK: StepProducer / StatefulComponent state

    public var state: [UInt64] { rollouts.state }
    public func restore(_ state: [UInt64]) throws { try rollouts.restore(state) }

    /// The rollout producer's state (sampler, generation in use) plus the buffer and SFT steps.
    public func saveState() -> ComponentState {
        var s = rollouts.saveState()
        s.values["relift_buffer"] = .ints(buffer.rows)
        s.values["relift_sft_steps"] = .int(sftSteps)
        return s
    }

    public func restoreState(_ state: ComponentState, step: Int) throws {
        let steps = try state.int("relift_sft_steps", in: 0...max(0, step))
        let rows = try state.ints("relift_buffer")
        if let bad = rows.first(where: { !examples.indices.contains($0) }) {
            throw StateError(.value, "relift_buffer", "holds row \(bad), the training data has \(examples.count)")
        }
        try rollouts.restoreState(state, step: step - steps)
        sftSteps = steps
        buffer = ReLIFTBuffer(rows: rows)
    }
}
