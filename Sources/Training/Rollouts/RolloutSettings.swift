import Foundation
import Models
import TensorCore

extension Recipe {
    /// What a run divides its logits by before the objective reads them: a rollout run's
    /// rollout_temperature, as TRL's GRPOTrainer takes the log-probs, the reference's and the
    /// entropy at its `temperature` (verl's actor too); 1 otherwise, and under online-dpo and
    /// a2po, whose log-probs TRL's OnlineDPOTrainer and A2POTrainer take from the raw logits.
    /// Scored data was not sampled here: its ratio is to the detached current log-probs.
    public func logitTemperature(for objective: Objective) -> Float {
        samplesRollouts(objective) && !(objective is OnlineDPOObjective || objective is A2POObjective) ? Float(self.rolloutTemperature) : 1
    }

    /// `truncation` given as a flag or in a recipe file (at any value), or away from its default:
    /// with it not given, over-long rollout prompts are refused (`RolloutPrompts.checkDefaultCut`).
    var truncationGiven: Bool {
        let k = Recipe.declared.truncation
        return deliberate(k) || origins[k.name] != nil
    }

    /// Whether the run samples rollouts: a rollout objective, not on scored data.
    public func samplesRollouts(_ objective: Objective) -> Bool {
        objective.requirements.rollouts && !self.scoredData
    }

    /// grpo and rloo read rows that are only a prompt in `--data` and `--heldout` (TRL's GRPO and
    /// RLOO datasets hold a "prompt" column; their trainers sample the answers). The mixing objectives train on
    /// `--data`'s completions, and the other methods on the rows' tokens.
    public func readsPromptOnlyRows(_ objective: Objective) -> Bool {
        objective is RolloutPolicyObjective && samplesRollouts(objective)
    }
}

/// The rollout part of a recipe, checked once at start-up.
public struct RolloutSettings: Sendable {
    /// G: rollouts per prompt.
    public var rollouts: Int
    /// Sequences per optimizer step (`batch_size`, as TRL counts it): batch/G prompts × G.
    public var batchSize: Int
    public var temperature: Float
    public var topP: Float
    /// Top-k of the rollouts (0: no limit).
    public var topK = 0
    public var maxCompletionLength: Int
    /// Slices of a generation: one generation of `stepsPerGeneration · batch` rollouts is split
    /// into that many step batches, trained in order (on each of the `iterations` passes).
    public var stepsPerGeneration: Int
    /// Passes over each generation's slices (TRL's `num_iterations`, GRPO's μ, arXiv 2402.03300
    /// Algorithm 1): a generation serves `stepsPerGeneration · iterations` optimizer steps.
    public var iterations = 1
    public var stepsOfAGeneration: Int { stepsPerGeneration * iterations }
    /// A rollout cut at `maxCompletionLength` (no end token) trains no token (TRL's
    /// `mask_truncated_completions`; DAPO, arXiv 2503.14476, §3.4 "overlong filtering").
    public var maskTruncated = false
    public var scaling: RewardScaling
    /// How the reward functions combine (TRL's `multi_objective_aggregation`).
    public var aggregation = RewardAggregation.sumThenNormalize
    public var seed: UInt64

    public var promptsPerStep: Int { batchSize / rollouts }
    public var promptsPerGeneration: Int { promptsPerStep * stepsPerGeneration }

    public init(rollouts: Int, batchSize: Int, temperature: Float, topP: Float, maxCompletionLength: Int,
                stepsPerGeneration: Int, scaling: RewardScaling, seed: UInt64) throws {
        guard batchSize % rollouts == 0 else {
            throw RecipeError("batch_size (\(batchSize)) must be a multiple of rollouts (\(rollouts)): a step holds batch/G prompts × G rollouts")
        }
        self.rollouts = rollouts; self.batchSize = batchSize; self.temperature = temperature; self.topP = topP
        self.maxCompletionLength = maxCompletionLength; self.stepsPerGeneration = stepsPerGeneration
        self.scaling = scaling; self.seed = seed
    }

    public init(recipe r: Recipe, objective: Objective? = nil) throws {
        // (`rollouts` reads 1, which a2po's recipe.yaml writes; a group needs two.)
        if objective?.requirements.rolloutsPerPrompt == nil && r.rollouts < 2 {
            throw RecipeError("\(r.named(Recipe.declared.rollouts)) \(r.rollouts): objective \(r.objective) compares each prompt's rollouts with each other (TRL's num_generations, at least 2); give 2 or more")
        }
        try self.init(rollouts: objective?.requirements.rolloutsPerPrompt ?? r.rollouts, batchSize: r.batchSize, temperature: Float(r.rolloutTemperature),
                      topP: Float(r.rolloutTopP), maxCompletionLength: r.maxCompletionLength,
                      stepsPerGeneration: r.stepsPerGeneration, scaling: r.scaleRewards,
                      seed: r.seed)
        topK = r.rolloutTopK
        iterations = r.numIterations
        maskTruncated = r.maskTruncatedCompletions
        aggregation = r.multiObjectiveAggregation
    }

    /// Longest prompt that leaves room for a whole completion in `context` tokens; `setBy`
    /// says what sets the context, for the message.
    public func promptLimit(context: Int, setBy: String = "max_length and the model's context") throws -> Int {
        let limit = context - maxCompletionLength
        guard limit >= 1 else {
            throw RecipeError("max_completion_length (\(maxCompletionLength)) leaves no room for a prompt in a context of \(context) tokens (\(setBy))")
        }
        return limit
    }

    /// Sampling options of every rollout: stop at `RolloutProducer.stopIds`; the
    /// behaviour log-probs at the temperature, as the trainer takes the policy's (`Trainer.logitTemperature`).
    public func sampling(stopIds: Set<Int32>) -> SamplingOptions {
        var o = SamplingOptions(maxNewTokens: maxCompletionLength, temperature: temperature, topK: topK, topP: topP, stopIds: stopIds)
        o.logProbsAtTemperature = true
        return o
    }

    /// The seed of generation `g`'s streams; rollout i of it samples from stream i, so the
    /// draws are a function of (seed, generation, prompt position, sample) only.
    public func generationSeed(_ g: Int) -> UInt64 {
        streamSeed(salt: 0x524F_4C4C_4F55_5453, g)   // "ROLLOUTS": apart from the seed's other streams
    }

    /// The seed of a2po's stage 1 streams (`OptimalValues`), apart from the rollouts' and evaluations'.
    public var valueSeed: UInt64 { streamSeed(salt: 0x5653_5441_525F_5641, 0) }   // "VSTAR_VA"

    /// The seed of the evaluation at `step`'s streams, apart from every generation's.
    public func evaluationSeed(_ step: Int) -> UInt64 {
        streamSeed(salt: 0x4556_414C_524F_4C4C, step)   // "EVALROLL"
    }

    /// The run's seed mixed with `salt` (one family of streams) and `index` (one member).
    func streamSeed(salt: UInt64, _ index: Int) -> UInt64 {
        var mix = SplitMix64(seed: seed ^ salt)
        mix.state &+= UInt64(index) &* 0x9E37_79B9_7F4A_7C15
        return mix.next()
    }
}
