import Distributed
import Foundation
import Models
import TensorCore

/// On-policy rollouts as a step producer (GRPO, arXiv 2402.03300 §4; TRL's `GRPOTrainer`).
///
/// Every `steps_per_generation × num_iterations` steps the coordinator's sampler picks
/// `steps_per_generation · batch/G` prompts (uniform, without replacement, a pure function of
/// (seed, generation)); each is repeated G times and all ranks generate them together
/// (`StepPreparation.generate`: rollouts dealt over ranks, KV cache, rollout i of generation g
/// from stream (seed_g, i), so the rollouts are the same for any rank count). The coordinator
/// scores them (`RolloutScoring`), every rank forms the group advantages of the whole
/// generation (`GroupAdvantages`), and step k of the generation trains on its slice j: prompts
/// j·batch/G ..< (j + 1)·batch/G with all their rollouts, j = k mod steps_per_generation (each
/// of the num_iterations passes takes the slices in order). Each rollout carries the sampler's
/// log-probs of its tokens (`behaviourLogProbs`): the importance ratio's denominator when a
/// generation is reused for later steps. A generation still in use is checkpointed
/// (`saveState`), so a resumed run trains on the same rollouts.
public final class RolloutProducer: ReportingProducer, StatefulComponent {
    public let name = "rollouts"
    public let stateName = "rollouts"
    public let settings: RolloutSettings
    /// The prompts each generation draws from: every one read (`allPrompts`), or under a2po's
    /// filter_all_incorrect those whose reference samples scored (`useOptimalValues`).
    public private(set) var prompts: [RolloutPrompt]
    /// Every prompt read, in order (a2po's stage 1 estimates a V* for each).
    public let allPrompts: [RolloutPrompt]
    public let rewards: [RewardFunction]
    public let stopId: Int32
    /// The model's eos ids beside it (`Evaluator.eosIds`: the tokenizer's, config.json's and
    /// generation_config.json's), which stop a rollout too, as TRL's GRPOTrainer stops at each.
    public var eosIds: Set<Int32> = []
    /// Every id that ends a rollout; the one that did is its last trained token.
    public var stopIds: Set<Int32> { eosIds.union([stopId]) }
    private(set) var sampler: UniformSampler
    /// a2po: each prompt's optimal value V*, estimated before the first step (stage 1); the
    /// advantage of a rollout is its weighted reward less its prompt's V*.
    public internal(set) var optimalValues: OptimalValues?
    /// The current generation: its index and all its sequences (rewards, advantages, groups).
    var generation: (index: Int, sequences: [StepSequence])?
    /// Mixing objectives (CHORD): training rows appended to each step batch after the rollouts.
    public var demonstrations: DemonstrationShare?
    /// SRFT: each prompt's demonstration in its rollout group, stored after the generation's rollouts.
    public var groupedDemonstrations: GroupedDemonstrations?
    /// UFT / Prefix-RFT: rollouts that continue a revealed prefix of the prompt's demonstration.
    public var revealedPrefixes: RevealedPrefixes?
    /// online-dpo: each prompt's two rollouts ranked into a pair (RankedPairs.swift), its
    /// `missing_eos_penalty`.
    public var rankedPairs: RankedPairs.Settings?
    /// rloo: leave-one-out advantages (`LeaveOneOutAdvantages`) in place of the group's, with the
    /// KL penalty in the reward when β > 0, and TRL's `normalize_advantages`.
    public var leaveOneOut: (penalty: LeaveOneOutAdvantages.Penalty?, normalize: Bool, clip: ClosedRange<Double>?)?
    /// Prompts longer than the rollouts' limit, and `--prompts` lines skipped, for the log.
    public internal(set) var promptNote: String?
    /// The objective, when it needs a reward for every rollout (online-dpo ranks them, a2po's
    /// advantage is r − V*): a rollout that no reward function scored (each gave `null`) ends
    /// the run there, where grpo, rloo and superhf leave it out (`RewardAggregation.weightedSum`).
    var unscorableRefusedBy: String?
    /// The objective, when it reads the first reward function alone (srft's right and wrong
    /// answers, relift's buffer: `StepSequence.solved`): a `null` from that function ends the run.
    var firstRewardReadBy: String?
    /// Whether the run said once that rollouts came back unscorable.
    var warnedUnscorable = false
    /// The held-out prompts an evaluation rolls out (`RolloutProducer+Evaluation.swift`), and
    /// how many rollouts each: none when the run evaluates the held-out NLL instead.
    public internal(set) var evaluationPrompts: [RolloutPrompt] = []
    public internal(set) var evaluationRollouts = 0
    /// Held-out prompts among the first eval_examples left out as too long (`--truncation drop`).
    public internal(set) var evaluationDropped = 0
    /// The objective and TRL trainer an evaluation follows, for the log.
    var evaluatedBy = (objective: "grpo", trainer: "GRPOTrainer")
    /// What the last `prepare` measured, for the step's metrics row (`RolloutMetrics`).
    public private(set) var lastMetrics: [(String, Double)] = []
    public var stepFields: [(String, Any)] { lastMetrics.map { ($0.0, $0.1 as Any) } }

    public init(settings: RolloutSettings, prompts: [RolloutPrompt], rewards: [RewardFunction], stopId: Int32) {
        precondition(!prompts.isEmpty && !rewards.isEmpty, "RolloutProducer needs prompts and reward functions")
        self.settings = settings; self.prompts = prompts; self.allPrompts = prompts; self.rewards = rewards; self.stopId = stopId
        sampler = UniformSampler(datasetSize: prompts.count, batchSize: settings.promptsPerGeneration, seed: settings.seed)
    }

    public func prepare(_ p: StepPreparation) -> StepBatch {
        // TRL's schedule: a generation every steps_per_generation × num_iterations steps, its
        // slices taken in order on each pass (`_buffered_inputs[_step % steps_per_generation]`).
        let g = p.step / settings.stepsOfAGeneration, part = p.step % settings.stepsPerGeneration
        var timing = (generate: 0.0, score: 0.0, tokens: 0, figures: [(String, Double)]())
        if generation?.index != g { timing = generate(g, p) }
        let perStep = settings.batchSize
        var slice = Array(generation!.sequences[(part * perStep)..<((part + 1) * perStep)])
        if rankedPairs != nil { RankedPairs.link(&slice) }
        lastMetrics = RolloutMetrics.rows(slice, rewards: rewards, groupSize: settings.rollouts,
                                          stopIds: stopIds, aggregation: settings.aggregation)
            + [("generate_s", timing.generate), ("score_s", timing.score)]
            + (timing.generate > 0 ? [("generate_tokens_per_s", Double(timing.tokens) / timing.generate)] : [])
            + timing.figures   // the generation's own (rloo's kl), on the step that made it, as TRL logs them once
            // The schedule the generation's rollouts were planned at (its first step), not this step's.
            + (revealedPrefixes?.metrics(slice, step: g * settings.stepsOfAGeneration) ?? [])
            + (rankedPairs != nil ? RankedPairs.metrics(slice, stopIds: stopIds) : [])
            + (optimalValues != nil ? [("v_star", Self.meanOptimalValue(slice, of: prompts))] : [])
        let grouped = groupedDemonstrations == nil ? [] : Array(generation!.sequences.dropFirst(perStep * settings.stepsPerGeneration)
            .dropFirst(part * perStep / settings.rollouts).prefix(perStep / settings.rollouts))
        let experts = grouped + (demonstrations.map { d in d.sampler.batch(step: p.step).map { StepSequence(demonstration: d.examples[$0], index: $0) } } ?? [])
        if !experts.isEmpty { lastMetrics.append(("expert_sequences", Double(experts.count))) }
        var batch = StepBatch(step: p.step, sequences: slice + experts)
        batch.onPolicy = p.step % settings.stepsOfAGeneration == 0   // sampled by this step's weights
        // A later pass over the generation (num_iterations): its rollouts' tokens were counted on the first.
        if p.step % settings.stepsOfAGeneration >= settings.stepsPerGeneration { batch.tokensSeenBefore = slice.reduce(0) { $0 + $1.ids.count } }
        batch.lossTokensPerStep = Self.lossTokensPerStep(generation!.sequences.prefix(perStep * settings.stepsPerGeneration),
                                                         steps: settings.stepsPerGeneration)
        return batch
    }

    /// The rollouts' loss tokens per step of a generation that spans `steps` steps (nil for one
    /// step): the normaliser TRL's dapo gives each of them (its `num_items_in_batch` counts the
    /// whole generation, rescaled by gradient_accumulation_steps / steps_per_generation), so a
    /// step of short completions weighs less than one of long ones, as in TRL.
    static func lossTokensPerStep(_ rollouts: ArraySlice<StepSequence>, steps: Int) -> Double? {
        guard steps > 1 else { return nil }
        return Double(rollouts.reduce(0) { $0 + $1.lossMask.reduce(0) { $0 + Int($1) } }) / Double(steps)
    }

    /// Generation g: sample, score, form advantages (collective). Returns the time of each part,
    /// the generated tokens and the generation's own figures.
    func generate(_ g: Int, _ p: StepPreparation) -> (generate: Double, score: Double, tokens: Int, figures: [(String, Double)]) {
        let chosen = sampler.batch(step: g)
        let plan = revealedPrefixes?.plan(chosen: chosen, prompts: prompts, rollouts: settings.rollouts, step: g * settings.stepsOfAGeneration,
                                          generationSeed: settings.generationSeed(g))
        let r = rollOut(chosen, of: prompts, rollouts: settings.rollouts, plan: plan, grouped: groupedDemonstrations,
                        seed: settings.generationSeed(g), firstGroup: g * settings.promptsPerGeneration, p)
        var sequences = r.sequences
        if let ranked = rankedPairs {
            let weights = rewards.map { Double($0.weight) }
            // Σ w·r over the functions that scored each rollout (TRL's online DPO: nansum); a
            // rollout none scored has ended the run (`scored`).
            let scores = RewardAggregation.weightedSums(ofRollouts: sequences.map { $0.rewards.map(Double.init) }, weights: weights)
            RankedPairs.rank(&sequences, scores: scores,
                             stopped: sequences.map { $0.stopped(stopIds) }, penalty: ranked.penalty)
        }
        generation = (g, sequences)
        return (r.generate, r.score, r.tokens, r.figures)
    }

    /// G rollouts of each of `prompts[chosen]` from `seed`'s streams (with `plan`: continuing
    /// its revealed prefixes), scored by the reward functions, with their group advantages;
    /// then each prompt's demonstration in its group when `grouped` is given (SRFT).
    /// Collective: the same sequences on every rank. Also the time of each part and the
    /// generated tokens. With `chunk`, the rollouts are generated that many at a time, each
    /// chunk reported to `progress` (done, total); rollout i samples from stream (seed, i)
    /// either way. `figures`: rloo's `kl` (the mean per trained token) when β > 0.
    func rollOut(_ chosen: [Int], of pool: [RolloutPrompt], rollouts G: Int, plan: RevealedPrefixes.Plan?,
                 grouped: GroupedDemonstrations?, seed: UInt64, firstGroup: Int, _ p: StepPreparation,
                 chunk: Int? = nil, progress: ((Int, Int) -> Void)? = nil)
        -> (sequences: [StepSequence], generate: Double, score: Double, tokens: Int, figures: [(String, Double)]) {
        let flat = plan?.prompts ?? chosen.flatMap { repeatElement(pool[$0].ids, count: G) }
        let t0 = p.comm.wallTime()
        let options = settings.sampling(stopIds: stopIds)
        var gens: [Generation] = []
        let size = max(1, chunk ?? flat.count)
        for start in stride(from: 0, to: flat.count, by: size) {
            let end = min(start + size, flat.count)
            gens += ShardedGeneration.generate(p.model, prompts: Array(flat[start..<end]), options: options, comm: p.comm) {
                RNG(seed: seed, stream: UInt64(start + $0))
            }
            progress?(end, flat.count)
        }
        let t1 = p.comm.wallTime()
        // A hybrid rollout's answer is the revealed prefix and its continuation.
        var items = gens.indices.map { i in scoringItem(pool[chosen[i / G]], gens[i], revealed: plan?.revealed[i] ?? [], p) }
        // SRFT: each prompt's demonstration is scored with its rollouts (its answer as the completion).
        if grouped != nil {
            // (A demonstration is a whole answer: it ends with the data's end token, as a rollout that stopped.)
            items += chosen.map { c in ScoringItem(prompt: p.tokenizer.decode(pool[c].ids), completion: pool[c].reference ?? "",
                                                   reference: pool[c].reference, source: pool[c].source, stop: p.tokenizer.decode([stopId]),
                                                   columns: pool[c].columns) }
        }
        let (matrix, total) = scored(items, p)
        let perFunction = matrix.perFunction.map { $0.map(Double.init) }, weights = rewards.map { Double($0.weight) }
        // nil under rloo: LeaveOneOutAdvantages forms them below, from the rollouts' trained tokens.
        var advantages: [Float]?, demoAdvantages: [Float] = []
        if grouped != nil {
            let both = GroupedDemonstrations.advantages(rollouts: perFunction.map { Array($0[..<gens.count]) },
                                                        demonstrations: perFunction.map { Array($0[gens.count...]) }, weights: weights,
                                                        groupSize: G, scaling: settings.scaling, aggregation: settings.aggregation)
            advantages = both.rollouts; demoAdvantages = both.demonstrations
        } else if optimalValues != nil {
            // a2po: the optimal advantage r − V*(x) (stage 1's V*, `OptimalValues`).
            advantages = gens.indices.map { i in Float(total[i] - Double(pool[chosen[i / G]].optimalValue!)) }
        } else if leaveOneOut == nil {
            advantages = settings.aggregation.advantages(perFunction, weights: weights, groupSize: G, scaling: settings.scaling).advantages
        }
        // A cut hybrid's revealed prefix stays trained where its term does not read the
        // advantage (UFT's hint likelihood); Prefix-RFT's −A·π/sg(π) on it goes with the rollout.
        let keepsPrefix = revealedPrefixes?.objective.prefixTermIgnoresAdvantage ?? false
        var sequences = gens.indices.map { i -> StepSequence in
            var s = Self.sequence(prompt: flat[i], generation: gens[i], stopId: stopId, example: chosen[i / G])
            s.group = firstGroup + i / G
            s.rewards = matrix.perFunction.map { $0[i] }
            s.advantage = advantages?[i] ?? 0
            if settings.maskTruncated && keepsPrefix { s.lossMask = Self.trainedMask(s.lossMask, finish: gens[i].finish) }
            if let plan { RevealedPrefixes.mark(&s, plan: plan, rollout: i) }
            if settings.maskTruncated && !keepsPrefix { s.lossMask = Self.trainedMask(s.lossMask, finish: gens[i].finish) }
            return s
        }
        var figures: [(String, Double)] = []
        if let loo = leaveOneOut {
            // After the masks: TRL's KL runs over the completion mask that mask_truncated_completions has cut.
            let kl = loo.penalty.map { LeaveOneOutAdvantages.klSums(sequences, penalty: $0, p) }
            let a = LeaveOneOutAdvantages(rewards: total, kl: kl?.kl ?? [Double](repeating: 0, count: total.count),
                                          tokens: kl?.tokens ?? [Double](repeating: 0, count: total.count),
                                          beta: loo.penalty?.beta ?? 0, groupSize: G, normalize: loo.normalize, clip: loo.clip)
            for i in sequences.indices { sequences[i].advantage = a.advantages[i] }
            if kl != nil { figures.append(("kl", a.klTokens > 0 ? a.klSum / a.klTokens : 0)) }
        }
        if let d = grouped {
            sequences += chosen.indices.map { j -> StepSequence in
                let e = d.exampleOfPrompt[chosen[j]]
                var s = StepSequence(demonstration: d.examples[e], index: e)
                s.group = firstGroup + j
                s.rewards = matrix.perFunction.map { $0[gens.count + j] }
                s.advantage = demoAdvantages[j]
                return s
            }
        }
        return (sequences, t1 - t0, p.comm.wallTime() - t1, gens.reduce(0) { $0 + $1.logProbs.count }, figures)
    }

    /// What the reward functions read of one rollout of `prompt`: the texts, its reference, and
    /// the stop token's text when it stopped (`revealed`: a hybrid rollout's prefix, part of its answer).
    func scoringItem(_ prompt: RolloutPrompt, _ gen: Generation, revealed: [Int32] = [], _ p: StepPreparation) -> ScoringItem {
        ScoringItem(prompt: p.tokenizer.decode(prompt.ids), completion: p.tokenizer.decode(revealed + gen.ids),
                    reference: prompt.reference, source: prompt.source,
                    stop: gen.finish == .stop ? p.tokenizer.decode([gen.stopId ?? stopId]) : nil, columns: prompt.columns)
    }

    /// The reward functions' scores of `items` (the coordinator's decision, on every rank) and
    /// each item's weighted reward Σ w·r; a scorer's failure or a reward that is not finite ends
    /// the run with its line. Collective.
    func scored(_ items: [ScoringItem], _ p: StepPreparation) -> (matrix: RolloutScoring.Matrix, total: [Double]) {
        let byModels = RolloutScoring.scoreModels(items, with: rewards, comm: p.comm)
        let matrix = p.decide { RolloutScoring.score(items, with: rewards, scored: byModels) }
        Fatal.agree(matrix.error, code: Fatal.Code.input)
        let total = RolloutScoring.weightedSum(matrix, weights: rewards.map(\.weight), count: items.count)
        if let bad = total.firstIndex(where: \.isInfinite) {
            Fatal.agree("\(items[bad].source): the weighted reward of a rollout is \(total[bad]); rewards must be finite", code: Fatal.Code.input)
        }
        // NaN: no function scored the rollout (each gave `null`). Every rank holds the same
        // matrix, so every rank takes the same branch.
        if let method = firstRewardReadBy, let bad = matrix.perFunction.first?.firstIndex(where: \.isNaN) {
            Fatal.agree("\(items[bad].source): reward \(rewards[0].name) gave null (no reward) for a rollout of this prompt; \(method) reads the first reward function to tell right answers from wrong ones, so it needs its reward for each rollout (grpo, rloo and superhf leave such a rollout out)", code: Fatal.Code.input)
        }
        let unscorable = total.indices.filter { total[$0].isNaN }
        if let first = unscorable.first {
            if let method = unscorableRefusedBy {
                Fatal.agree("\(items[first].source): every reward function gave null (no reward) for a rollout of this prompt; \(method) needs a reward for each rollout (grpo, rloo and superhf train such a rollout with advantage 0, as TRL's unscorable completions)", code: Fatal.Code.input)
            }
            if !warnedUnscorable && p.comm.isCoordinator {
                StandardError.write("sft-dist: warning: every reward function gave null (no reward) for \(unscorable.count) of \(items.count) rollouts (first: \(items[first].source)); they are left out of the rewards' means and get advantage 0, as TRL's unscorable completions (said once)\n")
            }
            warnedUnscorable = true
        }
        return (matrix, total)
    }

    /// a2po: V* onto every prompt (`training` in `allPrompts`' order) and the evaluation prompts,
    /// and the training prompts in `leaving` dropped (filter_all_incorrect); the sampler then
    /// draws from those left, by the same seed.
    func useOptimalValues(training: [Float], evaluation: [Float], leaving: [Int]) {
        precondition(training.count == allPrompts.count && evaluation.count == evaluationPrompts.count, "a V* per prompt")
        let gone = Set(leaving)
        prompts = allPrompts.indices.filter { !gone.contains($0) }.map { i in
            var prompt = allPrompts[i]
            prompt.optimalValue = training[i]
            return prompt
        }
        for i in evaluationPrompts.indices { evaluationPrompts[i].optimalValue = evaluation[i] }
        if !prompts.isEmpty { sampler = UniformSampler(datasetSize: prompts.count, batchSize: settings.promptsPerGeneration, seed: settings.seed) }
    }

    /// The mean V* of the prompts `rollouts` answer (TRL's logged `v_star`).
    static func meanOptimalValue(_ rollouts: [StepSequence], of pool: [RolloutPrompt]) -> Double {
        rollouts.reduce(0.0) { $0 + Double(pool[$1.example].optimalValue ?? 0) } / Double(max(rollouts.count, 1))
    }

    /// prompt + completion (+ the stop token when the rollout stopped: the one that did, else
    /// `stopId`); trained on the completion and the stop token, with the sampler's log-prob of each.
    static func sequence(prompt: [Int32], generation gen: Generation, stopId: Int32, example: Int) -> StepSequence {
        let completion = gen.ids + (gen.finish == .stop ? [gen.stopId ?? stopId] : [])
        precondition(gen.logProbs.count == completion.count, "a rollout's log-probs must match its tokens")
        var s = StepSequence(example: example, origin: .rollout, ids: prompt + completion,
                             lossMask: [UInt8](repeating: 0, count: prompt.count) + [UInt8](repeating: 1, count: completion.count),
                             promptLength: prompt.count)
        s.behaviourLogProbs = [Float](repeating: 0, count: prompt.count) + gen.logProbs
        return s
    }

    /// The loss mask of a rollout under `mask_truncated_completions` (TRL's; DAPO, arXiv
    /// 2503.14476, §3.4, overlong filtering): none of its tokens when it was cut at
    /// max_completion_length (`finish` is not a stop token), else `mask`. Applied after scoring,
    /// as TRL masks: its reward and advantage stay in its group, and it still counts in grpo's
    /// and dr_grpo's B.
    static func trainedMask(_ mask: [UInt8], finish: Generation.Finish) -> [UInt8] {
        finish == .stop ? mask : [UInt8](repeating: 0, count: mask.count)
    }

    // MARK: StepProducer / StatefulComponent state

    /// The prompt order is a pure function of the seed; only the generation in use is state.
    public var state: [UInt64] { sampler.state }
    public func restore(_ state: [UInt64]) throws { try sampler.restore(state) }

    /// The current generation's sequences (as their wire form, packed into 64-bit words), so
    /// a run resumed in the middle of a generation trains on the same rollouts.
    public func saveState() -> ComponentState {
        var values: [String: StateValue] = ["sampler": .words(sampler.state)]
        if let (index, sequences) = generation {
            var w = WireWriter()
            w.put(sequences)
            values["generation"] = .int(index)
            values["sequences_bytes"] = .int(w.bytes.count)
            values["sequences"] = .words(Self.pack(w.bytes))
        }
        return ComponentState(values: values)
    }

    public func restoreState(_ state: ComponentState, step: Int) throws {
        try sampler.restore(try state.words("sampler"))
        generation = nil
        guard state.values["generation"] != nil else { return }
        let index = try state.int("generation", in: 0...max(0, step))
        let count = try state.int("sequences_bytes", in: 0...(1 << 40))
        let words = try state.words("sequences")
        guard words.count == (count + 7) / 8 else { throw StateError(.value, "sequences", "holds \(words.count) words for \(count) bytes") }
        var r = WireReader(Self.unpack(words, count: count))
        let sequences = r.getArray(StepSequence.self)
        let demos = groupedDemonstrations == nil ? 0 : settings.promptsPerGeneration
        guard sequences.count == settings.batchSize * settings.stepsPerGeneration + demos else {
            throw StateError(.value, "sequences", "holds \(sequences.count) sequences, a generation has \(settings.batchSize * settings.stepsPerGeneration + demos)")
        }
        generation = (index, sequences)
    }

    static func pack(_ bytes: [UInt8]) -> [UInt64] {
        stride(from: 0, to: bytes.count, by: 8).map { i in
            bytes[i..<min(i + 8, bytes.count)].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        }
    }
    static func unpack(_ words: [UInt64], count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: words[$0 / 8] >> (8 * UInt64($0 % 8))) }
    }
}

/// The demonstrations a mixing objective adds to each step: `count` training rows, uniform
/// without replacement from their own seeded stream (a pure function of (seed, step)).
public struct DemonstrationShare {
    public let examples: [Example]
    public let sampler: UniformSampler
    /// Demonstrations per step so that they are `share` of the step's sequences:
    /// round(share/(1 − share) · rollouts) (Trinity: 256 rollouts at 0.2 → 64 demonstrations).
    public static func count(share: Float, rollouts: Int) -> Int {
        max(1, Int((Double(share) / (1 - Double(share)) * Double(rollouts)).rounded()))
    }
    public init(examples: [Example], count: Int, seed: UInt64) {
        self.examples = examples
        sampler = UniformSampler(datasetSize: examples.count, batchSize: count, seed: seed ^ 0x4558_5045_5254)   // "EXPERT"
    }
}
