import Distributed

/// Where a training sequence came from. Objectives that mix sources (CHORD, SRFT, issue 12)
/// weigh them by this; metrics count them.
public enum SequenceOrigin: UInt8, Sendable, CaseIterable {
    case demonstration = 0   // a row of the training data
    case rollout = 1         // sampled from the policy during training (issue 12)
    case prefixRollout = 2   // a rollout continuing a revealed prefix of a demonstration (UFT / Prefix-RFT)
    case pseudoLabel = 3     // a self-generated target that passed a vote or check (issue 14)
    /// A prompt with another row's answer, read by a forward without gradients only: KTO's
    /// estimate of the policy's KL from the reference (UnpairedProducer). The trainer deals
    /// these to the objective's statistics pass, never to the gradient pass.
    case mismatched = 4
}

/// Which side of a preference pair a sequence is (DPO, SPIN: issue 14); unpaired (`pair` −1),
/// a desirable (chosen) or undesirable (rejected) answer (KTO); or a triple's gold answer (TPO,
/// arXiv 2405.16681), whose `pair` is its chosen answer.
public enum PairRole: UInt8, Sendable {
    case none = 0, chosen = 1, rejected = 2, gold = 3
}

/// One sequence of a step, with every per-sequence field an objective may read.
///
/// Token-aligned arrays have `ids.count` entries, entry t describing token `ids[t]` (the
/// training target at position t − 1); empty means "not given". Batching shifts them with
/// the ids, so objectives see them per position next to `targets`.
public struct StepSequence: Sendable, Equatable {
    /// Identity for `observe` and selection: the training-set index of the example (or of the
    /// prompt a rollout answers); −1 when there is none.
    public var example: Int
    public var origin: SequenceOrigin
    public var ids: [Int32]
    /// 1 where `ids[t]` is trained (as `Example.lossMask`).
    public var lossMask: [UInt8]
    public var promptLength: Int
    /// Sequences sampled for the same prompt share a group (GRPO); −1 = none.
    public var group: Int = -1
    /// Reward of each reward function, in the producer's order.
    public var rewards: [Float] = []
    /// The verifier — the first reward function — gives its full score (≥ 1): what a rollout's
    /// `accuracy` counts, SRFT's y+ and what ReLIFT's buffer calls solved.
    public var solved: Bool { (rewards.first ?? 0) >= 1 }
    /// The sequence's advantage (group-normalised reward, or 1 for demonstrations).
    public var advantage: Float = 0
    /// log π_behaviour(ids[t] | ids[<t]) of the policy that sampled the sequence, so a ratio
    /// needs no full-vocabulary old-policy forward; 0 where not sampled (the prompt).
    public var behaviourLogProbs: [Float] = []
    /// Per-token loss weights (1 when empty).
    public var tokenWeights: [Float] = []
    /// log π_ref(ids[t] | ids[<t]) of a demonstration's (or kto mismatched pair's) loss tokens (0 elsewhere), scored before
    /// the first step under `--precompute-ref-log-probs`; empty otherwise. Not on the wire: every
    /// rank holds the scores and attaches them after the batch is shared (`PrecomputedReference`).
    public var referenceLogProbs: [Float] = []
    /// Per-sequence loss weight.
    public var weight: Float = 1
    /// Index in the step batch of the other sequence of a pair (a gold answer's: the chosen
    /// one); −1 = none.
    public var pair: Int = -1
    public var pairRole: PairRole = .none
    /// A data pair's margin on its chosen sequence (`Example.margin`: reward's r_c − r_j − margin).
    public var margin: Float = 0

    public init(example: Int, origin: SequenceOrigin, ids: [Int32], lossMask: [UInt8], promptLength: Int) {
        precondition(ids.count == lossMask.count, "StepSequence: ids and lossMask differ in length")
        self.example = example; self.origin = origin; self.ids = ids
        self.lossMask = lossMask; self.promptLength = promptLength
    }

    /// A demonstration: training-set row `index` as it is.
    public init(demonstration e: Example, index: Int) {
        self.init(example: index, origin: .demonstration, ids: e.ids, lossMask: e.lossMask, promptLength: e.promptLength)
        advantage = 1
        margin = e.margin
    }
}

/// Everything one optimizer step trains on, identical on every rank. A sequence's index
/// here is its global identity for the step, whatever the rank count. Ranks are dealt
/// `units` (`RankShard`: unit u to rank u mod size), so linked sequences train together.
public struct StepBatch: Sendable, Equatable {
    public var step: Int
    public var sequences: [StepSequence]
    /// The loss tokens of a step of this batch's generation on average, when one generation of
    /// rollouts spans several steps: TRL's `dapo` divides each step by it rather than by the
    /// step's own count (`StepContext.lossTokensPerStep`). nil: a step is its own generation.
    public var lossTokensPerStep: Double? = nil
    /// Tokens of this batch's sequences that an earlier step trained on already (a second pass
    /// over a generation, num_iterations > 1): left out of `num_tokens`, which TRL counts once
    /// per generation.
    public var tokensSeenBefore = 0
    /// Its rollouts were sampled by the weights this step starts from (a generation's first
    /// step; an evaluation's rollouts): their log-probs' drift from the sampler's is 0 by
    /// definition, as TRL's on-policy old log-probs are the live ones detached — not the
    /// decode-versus-forward rounding: the PPO-clip objectives' π_old is then the live log-prob,
    /// detached (`PPOClippedToken.behaviourLogProb`, rloo's and gmpo's rows), and grpo's
    /// `off_policy_mask_threshold` masks nothing.
    public var onPolicy = false
    public init(step: Int, sequences: [StepSequence]) { self.step = step; self.sequences = sequences }

    /// Sequence indices that must share a rank and a micro-batch: a sequence with its
    /// `pair` (DPO's chosen and rejected, whose log-prob sums meet in one loss term; a TPO
    /// triple's gold answer joins them, so triples deal as evenly as pairs), else a sequence
    /// alone. In order of each unit's first member.
    public var units: [[Int]] {
        var unitOf = [Int](repeating: -1, count: sequences.count), units: [[Int]] = []
        for i in sequences.indices where unitOf[i] < 0 {
            let p = sequences[i].pair
            if sequences[i].pairRole == .gold, p >= 0, p < i, unitOf[p] >= 0 {
                unitOf[i] = unitOf[p]; units[unitOf[p]].append(i)
                continue
            }
            var members = [i]
            if p > i, p < sequences.count, unitOf[p] < 0 { members.append(p) }
            for m in members { unitOf[m] = units.count }
            units.append(members)
        }
        return units
    }
}

extension StepSequence: WireCodable {
    public func write(to w: inout WireWriter) {
        w.put(Int64(example)); w.put(origin.rawValue); w.put(ids); w.put(lossMask); w.put(Int64(promptLength))
        w.put(Int64(group)); w.put(rewards); w.put(advantage); w.put(behaviourLogProbs); w.put(tokenWeights)
        w.put(weight); w.put(Int64(pair)); w.put(pairRole.rawValue)
    }

    public init(from r: inout WireReader) {
        let example = Int(r.get(Int64.self))
        let origin = SequenceOrigin(rawValue: r.get(UInt8.self)) ?? .demonstration
        let ids: [Int32] = r.getArray(), mask: [UInt8] = r.getArray()
        self.init(example: example, origin: origin, ids: ids, lossMask: mask, promptLength: Int(r.get(Int64.self)))
        group = Int(r.get(Int64.self)); rewards = r.getFloats(); advantage = r.get(Float.self)
        behaviourLogProbs = r.getFloats(); tokenWeights = r.getFloats(); weight = r.get(Float.self)
        pair = Int(r.get(Int64.self)); pairRole = PairRole(rawValue: r.get(UInt8.self)) ?? .none
    }
}

extension StepBatch: WireCodable {
    public func write(to w: inout WireWriter) {
        w.put(Int64(step)); w.put(sequences); w.put(lossTokensPerStep ?? -1); w.put(Int64(tokensSeenBefore)); w.put(UInt8(onPolicy ? 1 : 0))
        // Pair margins here, not in each sequence's own layout: checkpoints save a generation's
        // sequences (`RolloutProducer.saveState`) in that layout, which must stay readable.
        w.put(sequences.map(\.margin))
    }
    public init(from r: inout WireReader) {
        self.init(step: Int(r.get(Int64.self)), sequences: r.getArray(StepSequence.self))
        let perStep = r.get(Double.self)
        lossTokensPerStep = perStep >= 0 ? perStep : nil
        tokensSeenBefore = Int(r.get(Int64.self))
        onPolicy = r.get(UInt8.self) != 0
        for (i, m) in r.getFloats().enumerated() where i < sequences.count { sequences[i].margin = m }
    }
}
