import Distributed
import Models

/// The coordinator's seam: what each optimizer step trains on (docs/ARCHITECTURE.md).
///
/// `prepare` is collective — every rank calls it with the same step, in the same order —
/// so a producer can use collective work while preparing: sharded generation (rollouts,
/// issue 12), forward-only scoring of candidates (selection, issue 13), sampling and voting
/// (pseudo-labels, issue 14). Decisions are taken by the coordinator and broadcast
/// (`StepPreparation.decide`), so every rank returns the same `StepBatch`.
///
/// A producer exists on every rank and sees the same calls with the same values (`observe`
/// included), so its state is the same everywhere; `state` / `restore` carry it through
/// checkpoints.
public protocol StepProducer: AnyObject {
    var name: String { get }
    func prepare(_ p: StepPreparation) -> StepBatch
    /// Whether the trainer should compute per-sequence statistics for `observe` (a
    /// log-sum-exp per loss token during the training forward, and one allgather).
    var observes: Bool { get }
    /// After the step's update, on every rank: per-sequence statistics gathered from all
    /// ranks, in step-batch order, keyed by `SequenceStatistics.example`.
    func observe(step: Int, statistics: [SequenceStatistics])
    /// Everything needed to continue exactly after a restart.
    var state: [UInt64] { get }
    func restore(_ state: [UInt64]) throws
}

extension StepProducer {
    public var observes: Bool { false }
    public func observe(step: Int, statistics: [SequenceStatistics]) {}
}

/// What one sequence of the step did under the weights before the update.
public struct SequenceStatistics: Sendable, Equatable, WireCodable {
    /// Index in the step batch, and `StepSequence.example` (the identity producers key on).
    public var index: Int
    public var example: Int
    /// Σ −log p(target) over the sequence's loss tokens, and their count.
    public var lossSum: Double
    public var lossTokens: Int
    public var meanLoss: Double { lossTokens > 0 ? lossSum / Double(lossTokens) : 0 }

    public init(index: Int, example: Int, lossSum: Double, lossTokens: Int) {
        self.index = index; self.example = example; self.lossSum = lossSum; self.lossTokens = lossTokens
    }
    public func write(to w: inout WireWriter) {
        w.put(Int64(index)); w.put(Int64(example)); w.put(lossSum); w.put(Int64(lossTokens))
    }
    public init(from r: inout WireReader) {
        self.init(index: Int(r.get(Int64.self)), example: Int(r.get(Int64.self)), lossSum: r.get(Double.self),
                  lossTokens: Int(r.get(Int64.self)))
    }
}

public struct ProducerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// The world a producer prepares a step in: the same on every rank, except that `decide`'s
/// body runs on the coordinator only.
public final class StepPreparation {
    public let step: Int
    public let comm: Communicator
    /// The model being trained, at the weights this step starts from.
    public let model: LanguageModel
    /// The training set (every rank holds it).
    public let examples: [Example]
    /// Decodes completions for reward scorers; its stop and pad ids bound generation.
    public let tokenizer: Tokenizer
    public var padId: Int32 { tokenizer.padId }
    public let seed: UInt64
    /// The recipe's micro-batch size, for producers that batch forwards of their own (candidate
    /// scoring runs one candidate per forward: `CandidateScoring`).
    public let microBatchSize: Int

    public init(step: Int, comm: Communicator, model: LanguageModel, examples: [Example], tokenizer: Tokenizer,
                seed: UInt64, microBatchSize: Int) {
        self.step = step; self.comm = comm; self.model = model; self.examples = examples
        self.tokenizer = tokenizer; self.seed = seed; self.microBatchSize = max(1, microBatchSize)
    }

    /// The coordinator's decision, broadcast: `decide` runs on rank 0, every rank returns it.
    public func decide<T: WireCodable>(_ decide: () -> T) -> T { comm.broadcast(root: 0, decide) }

    /// Collective sampling: prompts dealt over ranks, results in prompt order on every rank
    /// (`ShardedGeneration`); prompt i samples from stream (seed, i).
    public func generate(prompts: [[Int32]], options: SamplingOptions, seed: UInt64) -> [Generation] {
        ShardedGeneration.generate(model, prompts: prompts, options: options, seed: seed, comm: comm)
    }

    /// Pre-step scoring (selection, issue 13; rloo's KL penalty): forward-only over the candidates, dealt over
    /// ranks; every rank gets every candidate's scores, in candidate order.
    /// `model` (default: the one being trained) scores, e.g. a frozen reference (learnability).
    public func score(_ candidates: [StepSequence], with scorer: CandidateScorer, model: LanguageModel? = nil) -> [[Float]] {
        CandidateScoring.score(candidates, with: scorer, model: model ?? self.model, comm: comm, padId: padId)
    }
}
