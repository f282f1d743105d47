import Distributed
import Foundation
import Models
import TensorCore

/// One optimizer step, top to bottom (docs/ARCHITECTURE.md): prepare → forward/backward per
/// micro-batch → gradient sync → update → observe. Each phase is one extension file:
/// `Trainer+Prepare.swift`, `Trainer+MicroBatch.swift`, `Trainer+Update.swift`; metrics and
/// checkpoints follow in `TrainingJob` / `Checkpointer`.
public final class Trainer {
    public let setup: RunSetup
    let comm: Communicator
    let model: LanguageModel
    let objective: Objective
    let optimizer: Optimizer
    /// `--zero`: the sharded AdamW (also `optimizer`) and its gradient shards (Trainer+Memory.swift).
    let zero: ZeroAdamW?
    let schedule: LRSchedule
    /// The coordinator's producer: what each step trains on (`StepProducer`).
    let source: StepProducer
    /// What the step updates; the rest of the model is frozen.
    public let trainable: TrainableSet
    let oldPolicy: LanguageModel?
    /// The run's divisor of the logits (policy, reference, old policy) before the objective
    /// reads them, `Recipe.logitTemperature`; `stepTemperature` uses 1 on ReLIFT's SFT steps.
    /// The sampler's behaviour log-probs are at the same temperature (`RolloutSettings.sampling`).
    public let logitTemperature: Float
    /// `--l2-init`: the pull towards the initial weights, added to the gradient (Forgetting/).
    let l2Init: L2InitPenalty?
    /// `--ema`: the moving average of the weights, updated after every optimizer step.
    public let ema: WeightEMA?
    /// `--bema`: the bias-corrected average, moved every bema_update_freq steps (BiasCorrectedEMA.swift).
    public let bema: BiasCorrectedEMA?
    /// `--bema-update-ref-model`: the reference replaced by the average every N steps (BEMAReferenceUpdate.swift).
    public let bemaReference: BEMAReferenceUpdate?
    /// `--sync-ref-model`: the reference moved towards the weights every N steps (ReferenceSync.swift).
    public let referenceSync: ReferenceSync?
    /// token-clean / forgetting with `scores=fixed`: the training set's token labels, scored
    /// before the first step or restored with a checkpoint (Trainer+TokenLabels.swift).
    let tokenLabelsState: TokenLabelsState?
    var tokenLabels: TokenLabels? { tokenLabelsState?.labels }
    /// Progress lines of work done before the first step (the scoring pass).
    let show: ((String) -> Void)?
    /// Everything of this run that a checkpoint must hold besides the model (Trainer+State.swift).
    public let components = StateRegistry()
    let skipped = SkippedSteps()
    public internal(set) var skippedSteps: Int { get { skipped.count } set { skipped.count = newValue } }
    /// Wall-clock split of the last step (seconds), for `sft-dist bench` and profiling.
    public struct StepTimings: Sendable {
        public var prepare = 0.0        // the producer, sharding, counts, statistics pass
        public var compute = 0.0        // forward + objective + backward, all micro-batches
        public var gradientSync = 0.0   // in the gradient allreduce after backward (incl. waiting for other ranks)
        public var syncInBackward = 0.0 // in MPI during backward (overlapped sums), part of `compute`
        public var update = 0.0         // scalar reductions, norm, clipping + optimizer
    }
    public internal(set) var lastTimings = StepTimings()
    /// Activations and their gradients, reused micro-batch after micro-batch (TensorCore.Arena).
    let arena = Arena()
    /// AdamW zeroes the trainable gradients in its update pass and the next step skips its
    /// zeroing pass (Trainer+GradientClearing.swift). Off by default, so the gradient stays
    /// readable after `step` (tests, tools); `sft-dist train` and `bench` turn it on.
    public var clearGradientsInUpdate = false
    /// The last update left the trainable gradients at zero.
    var gradientsCleared = false
    lazy var buckets = GradientBuckets(comm: comm, gradients: model.parameters.grads, regions: trainable.ranges)
    lazy var blockRanges = model.blockParameterRanges
    /// Called as the step leaves each phase ("prepare", "forward", "backward", "gradient sync",
    /// "update"; the middle two once per micro-batch): `sft-dist bench` reads the peak resident
    /// set of each phase through it (Bench/Benchmark+Memory.swift). Nil in training.
    public var onPhase: ((String) -> Void)?

    public struct StepReport {
        public var step: Int
        public var loss: Double
        public var lr: Float
        public var gradNorm: Double
        public var tokens: Int              // non-padding input tokens, all ranks
        public var sequenceTokens: Int      // every token of the sequences (TRL's num_tokens per step)
        public var lossTokens: Int
        public var diagnostics: [(String, Double)]
        public var skipped: Bool
    }

    /// `source` picks training rows (uniform sampling by default); `producer` replaces the
    /// whole step preparation; `trainable` (default: the recipe's `--freeze` / `--trainable`
    /// selection, every parameter without them) is what the step updates. `show` takes
    /// progress lines of work done before the first step (token-clean's scoring pass).
    public init(setup: RunSetup, comm: Communicator, source: BatchSource? = nil, producer: StepProducer? = nil,
                trainable: TrainableSet? = nil, show: ((String) -> Void)? = nil) {
        self.setup = setup
        self.comm = comm
        model = setup.model
        objective = setup.objective
        let r = setup.recipe
        let params = model.parameters
        let trainable = trainable ?? Fatal.collective {
            try LoRATraining.trainableSet(r, model: setup.model) ??
            ParameterSelection(r).trainableSet(params)
        }
        self.trainable = trainable
        trainable.apply(to: model.parameters)
        zero = Self.makeZero(recipe: r, comm: comm, model: model, trainable: trainable)
        Self.enableRecompute(recipe: r, model: model)
        switch r.optimizer {
        case .sgd: optimizer = SGD(params: model.parameters, trainable: trainable, momentum: Float(r.momentum),
                                   weightDecay: Float(r.weightDecay))
        case .adamw: optimizer = zero ?? AdamW(params: model.parameters, trainable: trainable, beta1: Float(r.beta1), beta2: Float(r.beta2),
                                       eps: Float(r.adamEps), weightDecay: Float(r.weightDecay))
        }
        schedule = LRSchedule(kind: r.schedule, peak: Float(r.lr),
                              warmupSteps: r.warmupSteps, totalSteps: r.steps, minRatio: Float(r.minLRRatio))
        // --selection: the selecting producer (Selection/), unless the caller gives one.
        let producer = producer ?? SelectionProducer.make(setup: setup, comm: comm)
        if let producer {
            self.source = producer
        } else if objective.requirements.pairs {
            // Pair i is examples 2i, 2i + 1 (`Dataset(pairsAt:)`); the sampler picks pairs.
            self.source = PairProducer(
                source: source ?? TrainEpochs.sampler(r, rows: setup.train.pairCount))
        } else if objective.requirements.unpaired {
            // Labelled rows, with the mismatched pairs of KTO's KL term (Coordinator/UnpairedProducer).
            let kto = objective as? KTOObjective
            self.source = UnpairedProducer(source: source ?? TrainEpochs.sampler(r, rows: setup.train.count),
                                           mismatched: kto?.estimatesKL ?? false, maxLength: Self.unpairedMaxLength(setup),
                                           fixedPairsOf: kto?.klPairing == .fixed ? setup.train.examples : nil)
        } else if r.scoredData {
            // Pre-scored samples of --data train a rollout objective without sampling (Rollouts/ScoredDataProducer).
            self.source = Fatal.collective { try ScoredDataProducer(setup: setup) }
        } else if objective is ReLIFTObjective {
            // ReLIFT: rollouts, with SFT steps on the demonstrations of failed prompts (Rollouts/ReLIFTProducer).
            self.source = Fatal.collective { try ReLIFTProducer(setup: setup) }
        } else if let gkd = objective as? GKDObjective {
            // GKD: the training rows, on a share lmbda of the steps with the student's own answers (Rollouts/DistillationProducer).
            self.source = DistillationProducer(setup: setup, objective: gkd, source: source ?? TrainEpochs.sampler(r, rows: setup.train.count))
        } else if objective.requirements.rollouts {
            // Rollout objectives (GRPO): prompts, rewards and sampling from the recipe (Rollouts/).
            self.source = Fatal.collective { try RolloutProducer(setup: setup) }
        } else {
            self.source = DemonstrationProducer(
                source: source ?? TrainEpochs.sampler(r, rows: setup.train.count))
        }
        // Every rank scores its share of the rollouts with its own copy of each reward model.
        let rollouts = (self.source as? RolloutProducer) ?? (self.source as? ReLIFTProducer)?.rollouts
        for case let judge as RewardModelScorer in rollouts?.rewards.map(\.scorer) ?? [] { judge.checkSameOnEveryRank() }
        // Scored before the first step (scoreTokenLabelsIfNeeded), unless a checkpoint holds them.
        if objective.requirements.tokenLabels, let selecting = objective as? ExcessLossSelecting {
            tokenLabelsState = TokenLabelsState(offsets: TokenLabels.offsets(setup.train.examples), ratio: selecting.ratio)
        } else {
            tokenLabelsState = nil
        }
        self.show = show
        oldPolicy = objective.requirements.oldPolicyRefresh != nil ? model.makeReplica() : nil
        logitTemperature = r.logitTemperature(for: objective)
        l2Init = r.l2Init > 0 ? L2InitPenalty(lambda: Float(r.l2Init), initial: params) : nil
        ema = r.ema > 0 ? WeightEMA(decay: Float(r.ema), model: model) : nil
        bema = r.bema ? BiasCorrectedEMA(schedule: r.bemaSchedule, initial: params, trainable: trainable.names) : nil
        // Recipe.validate refuses bema_update_ref_model where the objective reads no reference.
        bemaReference = r.bema && r.bemaUpdateRefModel
            ? setup.referenceModel.map { BEMAReferenceUpdate(every: r.bemaRefModelUpdateFreq, after: r.bemaRefModelUpdateAfter, reference: $0.parameters) } : nil
        // Recipe.validate refuses sync_ref_model where the objective reads no reference.
        referenceSync = r.syncRefModel ? setup.referenceModel.map { ReferenceSync(alpha: Float(r.refModelMixupAlpha), every: r.refModelSyncSteps, reference: $0.parameters) } : nil
        registerState()
    }

    public func step(_ step: Int) -> StepReport {
        // 1. Prepare (collective): the producer's step batch, this rank's micro-batches, the
        //    global normalisers, the old policy, the objective's statistics pass.
        let t0 = comm.wallTime()
        let prepared = prepare(step)
        onPhase?("prepare")

        // 2. Forward, objective, backward per micro-batch; gradients accumulate. On the last
        //    micro-batch each block's gradient sum starts as soon as backward has finished it.
        let tCompute = comm.wallTime()
        zeroGradientsUnlessCleared()   // Trainer+GradientClearing.swift
        let overlap = setup.recipe.overlapGradSync && comm.size > 1
        var total = ObjectiveResult(loss: 0), localBad = false
        var observed: [SequenceStatistics] = []
        let rounds = reductionRounds(microBatches: prepared.micro.count)   // Trainer+Memory.swift (ZeRO-2)
        for (k, mb) in prepared.micro.enumerated() {
            let pass = MicroBatchPass(mb: mb, index: k, context: prepared.context, sequences: prepared.batch.sequences,
                                      syncing: syncsDuringBackward(k, rounds: rounds, overlap: overlap), observing: source.observes)
            // Trainer+MicroBatch.swift: LM head fused with a row-local objective, or full logits.
            let result = fusedMicroBatch(pass) ?? unfusedMicroBatch(pass)
            if !result.loss.isFinite { localBad = true }
            total = merge(total, result.objective)
            observed += result.statistics
            endMicroBatch(k, rounds: rounds)
            onPhase?("backward")
        }
        joinRemainingRounds(microBatches: prepared.micro.count, rounds: rounds)
        arena.settle()   // a step that grew the arena maps its pages now, not the next step's kernels

        // 3. Gradient sync: the trainable ranges summed over ranks.
        let tSync = comm.wallTime()
        syncGradients(overlapped: overlap)
        let tSynced = comm.wallTime()
        onPhase?("gradient sync")
        lastTimings = StepTimings(prepare: tCompute - t0, compute: tSync - tCompute, gradientSync: tSynced - tSync,
                                  syncInBackward: overlap ? zero?.gradients.takeSecondsInBackward() ?? buckets.takeSecondsInBackward() : 0)

        // 4. Update: global loss and diagnostics, norm, non-finite policy, clipping + optimizer.
        let report = update(step: step, total: total, localBad: localBad, prepared: prepared)
        referenceSync?.afterStep(step + 1, policy: model.parameters)
        if let bema {
            bema.afterStep(step + 1, weights: model.parameters)
            bemaReference?.afterStep(step + 1, policy: model.parameters, average: bema)
        }
        lastTimings.update = comm.wallTime() - tSynced
        onPhase?("update")

        // 5. The producer observes what the step did (all ranks' statistics, batch order).
        if source.observes { observe(step: step, local: observed) }
        return report
    }

}

extension Trainer {
    /// The reward models (`--reward DIR`) the producer reads: the rollouts' reward functions
    /// (grpo, rloo, online-dpo, relift), or SuperHF's.
    public var rewardModels: [RewardModelScorer] {
        let rollouts = (source as? RolloutProducer) ?? (source as? ReLIFTProducer)?.rollouts
        let functions = rollouts?.rewards ?? ((source as? SelfTrainProducer)?.method as? SuperHFRound)?.rewards ?? []
        return functions.compactMap { $0.scorer as? RewardModelScorer }
    }

    /// The length kto's mismatched pairs are cut to (TRL's collator keeps their start): the same
    /// in the step's producer, the held-out evaluation and the scoring pass of precompute_ref_log_probs.
    static func unpairedMaxLength(_ setup: RunSetup) -> Int { min(setup.recipe.maxLength, setup.model.maxSequenceLength) }
}
