import Distributed
import Foundation
import Models
import TensorCore

/// GKD's step batches (arXiv 2306.13649, Algorithm 1; TRL's `GKDTrainer.training_step`):
/// the coordinator's `BatchSource` picks training rows as for SFT, and then
///   - with probability `lmbda` the step is on-policy: each row's completion is replaced by the
///     student's own sample for the row's prompt (the weights this step starts from);
///   - otherwise, with `seq_kd`, by the teacher's sample (sequence-level KD);
///   - otherwise the rows train as they are.
/// One draw per optimizer step, a pure function of (seed, step) — TRL draws `random.random()`
/// per micro-batch on every process from the same seed; a per-step draw keeps the step one
/// batch at any rank count and micro-batch size. Samples are dealt over ranks
/// (`ShardedGeneration`; row i of step s from stream (seed_s, i)), so they are the same for
/// any rank count; each stops at the data's end token or an eos id (trained, as TRL's
/// completion mask keeps the first eos) or after `max_completion_length` tokens, at
/// `rollout_temperature`, `rollout_top_p`, `rollout_top_k` (TRL's `temperature`,
/// `max_new_tokens`; its `top_k` is 0). State: the batch source's only.
public final class DistillationProducer: ReportingProducer {
    public let name = "distillation"
    public let source: BatchSource
    public let lmbda: Double
    public let seqKD: Bool
    /// The teacher that samples under `seq_kd` (the objective's reference model).
    let teacher: LanguageModel?
    public let options: SamplingOptions
    public let stopId: Int32
    /// The longest sequence a step may hold: max_length (packing's row length; grpo's bound too).
    public let maxLength: Int
    let seed: UInt64
    public private(set) var lastMetrics: [(String, Double)] = []
    public var stepFields: [(String, Any)] { lastMetrics.map { ($0.0, $0.1 as Any) } }

    public init(source: BatchSource, lmbda: Double, seqKD: Bool, teacher: LanguageModel?, options: SamplingOptions,
                stopId: Int32, maxLength: Int, seed: UInt64) {
        precondition(!seqKD || teacher != nil, "seq_kd samples from the teacher")
        self.source = source; self.lmbda = lmbda; self.seqKD = seqKD; self.teacher = teacher
        self.options = options; self.stopId = stopId; self.maxLength = maxLength; self.seed = seed
    }

    /// The producer a gkd run's recipe describes.
    public convenience init(setup: RunSetup, objective: GKDObjective, source: BatchSource) {
        let r = setup.recipe
        let stops = Evaluator.eosIds(setup.tokenizer, model: setup.model).union([RolloutPrompts.stopId(setup)])
        let options = SamplingOptions(maxNewTokens: r.maxCompletionLength, temperature: Float(r.rolloutTemperature),
                                      topK: r.rolloutTopK, topP: Float(r.rolloutTopP), stopIds: stops)
        self.init(source: source, lmbda: objective.lmbda, seqKD: objective.seqKD, teacher: setup.referenceModel,
                  options: options, stopId: RolloutPrompts.stopId(setup), maxLength: r.maxLength, seed: r.seed)
    }

    public func prepare(_ p: StepPreparation) -> StepBatch {
        let rows = p.decide { StepBatch(step: p.step, sequences: source.batch(step: p.step).map {
            StepSequence(demonstration: p.examples[$0], index: $0)
        }) }
        let onPolicy = Self.draw(seed: seed, step: p.step) < lmbda
        guard onPolicy || seqKD, let sampler = onPolicy ? p.model : teacher else {
            lastMetrics = [("on_policy", 0)] + (seqKD ? [("teacher_samples", 0)] : [])
            return rows
        }
        let t0 = p.comm.wallTime()
        let prompts = rows.sequences.map { Array($0.ids[0..<$0.promptLength]) }
        // Both models read every sequence, and packing fits it in max_length: answers past the
        // shortest of the three are cut (and none is generated past what the shortest prompt leaves).
        let fits = min(maxLength, p.model.maxSequenceLength, teacher?.maxSequenceLength ?? .max)
        var bounded = options
        bounded.maxNewTokens = max(1, min(options.maxNewTokens, fits - (prompts.map(\.count).min() ?? 0)))
        let gens = ShardedGeneration.generate(sampler, prompts: prompts, options: bounded, seed: Self.streamSeed(seed: seed, step: p.step),
                                              comm: p.comm)
        let seconds = p.comm.wallTime() - t0
        var cut = 0
        var batch = StepBatch(step: p.step, sequences: zip(rows.sequences, gens).map { row, g in
            var s = RolloutProducer.sequence(prompt: Array(row.ids[0..<row.promptLength]), generation: g, stopId: stopId, example: row.example)
            if s.ids.count > fits {
                s.ids.removeLast(s.ids.count - fits); s.lossMask.removeLast(s.lossMask.count - fits); s.behaviourLogProbs = []
                if g.finish == .stop { cut += 1 }
            }
            return s
        })
        batch.onPolicy = onPolicy
        // What trains: each answer as cut; clipped = cut at max_completion_length or at the context.
        let lengths = batch.sequences.map { Double($0.ids.count - $0.promptLength) }, n = Double(max(1, gens.count))
        let generated = gens.reduce(0) { $0 + $1.logProbs.count }
        lastMetrics = [("on_policy", onPolicy ? 1 : 0)] + (seqKD ? [("teacher_samples", onPolicy ? 0 : 1)] : [])
            + [("completions/mean_length", lengths.reduce(0, +) / n),
               ("completions/clipped_ratio", Double(gens.filter { $0.finish != .stop }.count + cut) / n),
               ("generate_s", seconds)]
            + (seconds > 0 ? [("generate_tokens_per_s", Double(generated) / seconds)] : [])
        return batch
    }

    /// Step s's uniform draw in [0, 1): on-policy when below lmbda (so lmbda 0 never is, 1 always).
    static func draw(seed: UInt64, step: Int) -> Double {
        Double(mixed(seed: seed, salt: 0x474B_445F_4C4D_4244, step) >> 11) * 0x1p-53   // "GKD_LMBD"
    }

    /// The seed of step s's sampling streams, apart from the seed's other streams.
    static func streamSeed(seed: UInt64, step: Int) -> UInt64 {
        mixed(seed: seed, salt: 0x474B_445F_5341_4D50, step)   // "GKD_SAMP"
    }

    static func mixed(seed: UInt64, salt: UInt64, _ index: Int) -> UInt64 {
        var mix = SplitMix64(seed: seed ^ salt)
        mix.state &+= UInt64(index) &* 0x9E37_79B9_7F4A_7C15
        return mix.next()
    }

    /// Why a gkd run cannot start with `teacher` (`--ref-model path`), or nil: a training row the
    /// student answers needs a prompt to continue (TRL's collator refuses one truncated to
    /// nothing); the teacher reads every trained and held-out row, so none may be longer than
    /// its context.
    public static func setupProblem(teacher: LanguageModel, path: String, samples: Bool, train: [Example], heldOut: [Example]) -> String? {
        if samples {
            do { try RolloutPrompts.checkNonEmpty(RolloutPrompts.fromExamples(train)) } catch {
                return "\(error); objective gkd answers --data's prompts (lmbda above 0 or seq_kd)"
            }
        }
        let limit = teacher.maxSequenceLength
        guard let long = (train + heldOut).first(where: { $0.ids.count > limit }) else { return nil }
        return "--ref-model \(path): the teacher reads at most \(limit) positions, and \(long.source) has \(long.ids.count) tokens: give --max-length \(limit), or a teacher with a longer context"
    }

    public var state: [UInt64] { source.state }
    public func restore(_ state: [UInt64]) throws { try source.restore(state) }
}
