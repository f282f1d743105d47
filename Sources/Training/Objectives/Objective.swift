import TensorCore

/// The seam every training objective plugs into (docs/ARCHITECTURE.md, step 2).
///
/// An objective sees one micro-batch's logits and returns its loss contribution and
/// dL/dlogits, *already divided by the global normaliser* (global loss tokens, global
/// sequences, … as the method defines). Summing contributions over micro-batches and ranks
/// then gives the global loss, and the gradient allreduce needs no rescaling — which is what
/// makes results independent of the number of ranks.
public protocol Objective: AnyObject {
    /// The name used by `--objective` and recipes.
    var name: String { get }
    /// Extra state the trainer must provide.
    var requirements: ObjectiveRequirements { get }

    /// Called once per optimizer step before any micro-batch, with the step's global counts.
    /// Objectives with a statistics pass receive the gathered statistics here too.
    func beginStep(_ context: StepContext)

    /// Per-micro-batch statistics for objectives with `requirements.statisticsPass`
    /// (computed on a forward pass without gradients, over this rank's shard). The trainer
    /// gathers every rank's arrays, in rank order, into `StepContext.statistics`.
    func statistics(_ input: ObjectiveInput) -> [Float]

    /// Loss contribution of this micro-batch (normalised by global counts) and its gradient,
    /// accumulated (+=) into `dlogits` [N, V] — written (=) with `requirements.writesWholeRows`.
    /// Diagnostics are *sums* the trainer allreduces.
    func lossAndGradient(_ input: ObjectiveInput, dlogits: UnsafeMutablePointer<Float>) -> ObjectiveResult

    /// Called once after each applied optimizer step (not a skipped one, not in evaluation) with
    /// the step's global loss and diagnostics (means); returns more figures for the step's
    /// report (grpo's adaptive entropy coefficient updates here).
    func endStep(loss: Double, diagnostics: [(String, Double)]) -> [(String, Double)]

    /// State the objective keeps across steps, checkpointed with the run's other components.
    var statefulParts: [StatefulComponent] { get }

    /// Figures made from a step's or an evaluation's diagnostic means (after every rank's sums
    /// are in), reported beside them: kto's `rewards/margins`, a difference of two means.
    func derivedFigures(_ means: [(String, Double)]) -> [(String, Double)]
}

extension Objective {
    public func statistics(_ input: ObjectiveInput) -> [Float] { [] }
    public func beginStep(_ context: StepContext) {}
    public func endStep(loss: Double, diagnostics: [(String, Double)]) -> [(String, Double)] { [] }
    public var statefulParts: [StatefulComponent] { [] }
    public func derivedFigures(_ means: [(String, Double)]) -> [(String, Double)] { [] }
}

public struct ObjectiveRequirements: Sendable {
    /// A frozen reference model (the initial weights or `--ref-model`), its logits in each
    /// micro-batch unless `referenceInStep` is false.
    public var referenceModel = false
    /// Logits of an old-policy snapshot, refreshed every `oldPolicyRefresh` steps.
    public var oldPolicyRefresh: Int? = nil
    /// A forward-only pass over the global batch before the gradient pass.
    public var statisticsPass = false
    /// The statistics read the policy's logits alone (grpo's entropies): that pass skips the
    /// reference and old-policy forwards.
    public var statisticsFromPolicyAlone = false
    /// Each row's loss and gradient depend on that row's logits only, and the objective
    /// neither samples nor keeps logits between calls: the trainer may then call it on
    /// chunks of rows, concurrently, with the LM head fused in (`Tape.fusedHead`), so the
    /// whole [N, V] logits are never stored. Diagnostics must be sums over rows.
    public var rowLocal = false
    /// The behaviour policy's log-probs of the taken tokens (`ObjectiveInput.behaviourLogProbs`),
    /// which the step's producer supplies (rollouts record them while sampling): a ratio to
    /// the sampling policy without a full-vocabulary old-policy forward. The trainer stops the
    /// run when a trained sequence lacks them.
    public var behaviourLogProbs = false
    /// Preference pairs (`{prompt, chosen, rejected}` data, `PairProducer`): each step batch
    /// holds linked chosen/rejected sequences, trained in one micro-batch (DPO).
    public var pairs = false
    /// Sampled rollouts with rewards and group advantages (`RolloutProducer`, Rollouts/): the
    /// trainer builds the rollout producer instead of the demonstration producer (GRPO).
    public var rollouts = false
    /// `lossAndGradient` writes (=) every entry of dlogits for all of its input's rows, masked
    /// ones too, instead of accumulating into zeros: the fused head then hands it an
    /// uninitialised buffer and skips clearing R·V floats per chunk. Only for objectives
    /// that are never called to add to a gradient another term has written.
    public var writesWholeRows = false
    /// Per-token labels of the training set, scored once before the first step by the initial
    /// weights against the frozen reference (`Trainer.tokenLabels`: token-clean and forgetting
    /// with `scores=fixed`); the rows carry them as `tokenWeights`. Loads the reference model.
    public var tokenLabels = false
    /// Unpaired rows labelled desirable or undesirable (`{prompt, completion, label}` data,
    /// `Dataset(unpairedAt:)`, `UnpairedProducer`): KTO.
    public var unpaired = false
    /// The reference's logits are read per micro-batch (`ObjectiveInput.referenceLogits`); false
    /// where the reference only scores rollouts when they are generated (rloo's KL penalty in the
    /// reward, `LeaveOneOutAdvantages`): the model is loaded, but the step runs no forward of it.
    public var referenceInStep = true
    /// The model is a reward model (`SequenceScoreHead`: logits [N, 1]) and the data's
    /// sequences end with one token past their last (RewardObjective): `--objective reward`.
    public var sequenceScores = false
    /// Pair data carries a third, gold answer per row (TRL's TPO `"reference"` column), which
    /// enters the step batch beside its pair (`PairRole.gold`): `--objective tpo`.
    public var goldAnswers = false
    /// What a row of pair data is called in the log: "triples" under tpo, else "pairs".
    public var pairUnit: String { Dataset.pairUnit(goldAnswers: goldAnswers) }
    /// Rollouts per prompt the objective is built for (online-dpo's pair: 2), in place of the
    /// recipe's `rollouts`, which may then only be left unset or given that value.
    public var rolloutsPerPrompt: Int? = nil
    /// The objective reads the reference only as log π_ref(target) of each loss token of fixed
    /// data, so `--precompute-ref-log-probs` may score the data once before the first step
    /// (`PrecomputedReference`) and release the reference model: dpo, and kto with
    /// kl_pairing=fixed or loss_type=apo_zero_unpaired (TRL's DPOConfig and KTOConfig
    /// `precompute_ref_log_probs`).
    public var precomputableReference = false
    public init(referenceModel: Bool = false, oldPolicyRefresh: Int? = nil, statisticsPass: Bool = false,
                rowLocal: Bool = false, behaviourLogProbs: Bool = false, pairs: Bool = false) {
        self.referenceModel = referenceModel
        self.oldPolicyRefresh = oldPolicyRefresh
        self.statisticsPass = statisticsPass
        self.rowLocal = rowLocal
        self.behaviourLogProbs = behaviourLogProbs
        self.pairs = pairs
    }
}

/// Global facts about the current optimizer step, identical on every rank.
public struct StepContext {
    public var step: Int                  // 0-based optimizer step
    /// The batch's rollouts were sampled by the current weights (`StepBatch.onPolicy`).
    public var onPolicy = false
    public var totalSteps: Int
    public var globalLossTokens: Int      // Σ mask over the whole global batch, all ranks
    public var globalSequences: Int       // sequences with at least one loss token
    public var statistics: [[Float]]      // per rank, concatenated micro-batch statistics
    /// The run's sampling seed, the same on every rank. Objectives that sample (OTR) derive one
    /// stream per (step, sequenceId, position) from it, so draws do not depend on how the
    /// global batch is split over ranks and micro-batches, and a resumed run draws the same.
    public var seed: UInt64
    /// A generation's loss tokens per step when it spans several steps (`StepBatch.lossTokensPerStep`).
    public var lossTokensPerStep: Double? = nil
    /// What the trainer divided this step's logits by before the objective read them (a rollout
    /// run's temperature, `Trainer.stepTemperature`); 1 otherwise.
    public var logitTemperature: Float = 1
    public init(step: Int, totalSteps: Int, globalLossTokens: Int, globalSequences: Int, statistics: [[Float]] = [],
                seed: UInt64 = 0) {
        self.step = step; self.totalSteps = totalSteps
        self.globalLossTokens = globalLossTokens; self.globalSequences = globalSequences
        self.statistics = statistics; self.seed = seed
    }
}

/// One micro-batch as the objective sees it. Positions are rows: N = B·T.
public struct ObjectiveInput {
    public var rows: Int
    public var vocab: Int
    public var logits: UnsafePointer<Float>            // [N, V], model being trained
    public var targets: [Int32]                         // [N], −1 where there is none
    public var mask: [Float]                            // [N], 1 on loss tokens
    /// [N] loss tokens of the sequence each position belongs to (0 for padding); for
    /// sequence-mean normalisation.
    public var sequenceLossTokens: [Float]
    /// [N] the index in the step batch (`sequences`) of the sequence each position belongs
    /// to (−1 for padding): the same for any rank count, so OTR keys its sampling streams on
    /// it, and per-sequence fields are `sequences[Int(sequenceId[r])]`.
    public var sequenceId: [Int32]
    /// The whole step batch (every rank's sequences): advantage, rewards, group, origin,
    /// weight, pair link of each sequence.
    public var sequences: [StepSequence]
    /// [N] log π_behaviour(target) per position (0 where not sampled), or empty when no
    /// sequence of the micro-batch carries them.
    public var behaviourLogProbs: [Float]
    /// [N] per-target loss weights, or empty (all 1).
    public var tokenWeights: [Float]
    public var referenceLogits: UnsafePointer<Float>?   // [N, V] when requirements.referenceModel and referenceInStep
    /// [N] log π_ref(target) per position, scored before the first step (`--precompute-ref-log-probs`,
    /// `PrecomputedReference`), or empty: then the reference is `referenceLogits`.
    public var referenceLogProbs: [Float] = []
    public var oldLogits: UnsafePointer<Float>?         // [N, V] when requirements.oldPolicyRefresh
    public var context: StepContext

    public init(rows: Int, vocab: Int, logits: UnsafePointer<Float>, targets: [Int32], mask: [Float],
                sequenceLossTokens: [Float], sequenceId: [Int32], referenceLogits: UnsafePointer<Float>? = nil,
                oldLogits: UnsafePointer<Float>? = nil, context: StepContext,
                sequences: [StepSequence] = [], behaviourLogProbs: [Float] = [], tokenWeights: [Float] = []) {
        self.rows = rows; self.vocab = vocab; self.logits = logits; self.targets = targets
        self.mask = mask; self.sequenceLossTokens = sequenceLossTokens; self.sequenceId = sequenceId
        self.referenceLogits = referenceLogits; self.oldLogits = oldLogits
        self.context = context
        self.sequences = sequences; self.behaviourLogProbs = behaviourLogProbs; self.tokenWeights = tokenWeights
    }
}

public struct ObjectiveResult {
    /// This micro-batch's share of the global loss (already normalised).
    public var loss: Double
    /// Diagnostic sums, allreduced by the trainer and divided by `diagnosticCounts[key]`
    /// when present (e.g. "mean_p": Σp with count Σmask).
    public var diagnostics: [String: Double]
    public var diagnosticCounts: [String: Double]
    public init(loss: Double, diagnostics: [String: Double] = [:], diagnosticCounts: [String: Double] = [:]) {
        self.loss = loss; self.diagnostics = diagnostics; self.diagnosticCounts = diagnosticCounts
    }
}

public struct ObjectiveError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// A policy-gradient objective trained on its rollouts alone (grpo, rloo): it reads rows that
/// are only a prompt, and evaluates by rolling out the held-out prompts as TRL's GRPOTrainer
/// and RLOOTrainer do (`RolloutProducer+Evaluation.swift`); `trainerName` is TRL's class.
public protocol RolloutPolicyObjective: Objective {
    var trainerName: String { get }
}
