import Foundation
import TensorCore

/// Prefix-RFT, "Blending Supervised and Reinforcement Fine-Tuning with Prefix Sampling", Huang et
/// al., arXiv 2507.01679, §3 (prefix sampling, the hybrid group, entropy-based clipping, the
/// cosine-decaying prefix length); code: `ZeroYuHuang/prefix_rft` `recipe/prefix_rft/`
/// (`rl_dataset.py`, `scheduler/global_step.py`, `dp_actor.py::reshape_func`).
///
/// Of each prompt's G rollouts the last `hybrid` (the paper: 1) continue a prefix of its
/// demonstration, the others are plain; all G form one group. The revealed fraction is
/// l = low(t) + (high − low)·u, u ~ Beta(1, 1), low(t) the cosine decay low_start → low_end over
/// `decay_steps` (½(1 + cos(π·t/D)) interpolation, low_end after D), and the prefix is
/// max(min_prefix, ⌊l·|y*|⌋) tokens, at most |y*| − 1 (|y*| the answer without its stop token).
/// Per step, with A the rollout's group advantage (Dr.GRPO's r − mean, as the paper, with
/// `scale_rewards: none`, which `recipes/prefix-rft.yaml` sets; the flag's default is TRL's `group`):
///
///   L = [Σ_{generated} −min(c·A, clip(c, 1 − ε_low, 1 + ε_high)·A) + Σ_{prefix} −A_t·exp(log π_θ − sg(log π_θ))] / (B·L_max)
///     − c_H · Σ_{generated} H_t / N_gen,
///   A_t = A if sg(H_t) ≥ τ else 0,  τ the entropy at rank ⌊mask·n⌋ of the step's n prefix tokens (ascending),
///
/// c = exp(log π_θ − log π_old) on generated tokens (π_old the sampler's log-probs on a reused
/// generation's later steps, π_θ detached on its first); the prefix tokens' old log-prob is the
/// current policy's (ratio 1, the code's), so their gradient is −A_t·∇log π_θ. Entropy-based
/// clipping zeroes the advantage of the lower-entropy `entropy_mask` share of the prefix tokens
/// (the paper keeps the top 20 %); τ is taken over every prefix token of the step batch (the
/// statistics pass gathers their entropies from all ranks; the code ranks per micro-batch), and
/// tokens tied at τ are all kept. B = rollouts in the step, L_max = `max_completion_length`
/// (Dr.GRPO's constant), N_gen the step's generated loss tokens. Detached: A, π_behaviour, the
/// prefix tokens' old log-prob, H_t in the mask, τ.
/// Arguments: `hybrid` 1, `low_start` 0.95, `low_end` 0.05, `high` 1, `decay_steps` (default: the
/// run's steps), `min_prefix` 1, `entropy_mask` 0.8, `entropy_coef` 0.001, `epsilon` 0.2,
/// `epsilon_high` (= epsilon).
/// Diagnostics: `prefix_kept` (share of prefix tokens whose advantage is kept), `entropy_threshold`,
/// `clip_ratio/low_mean`, `clip_ratio/high_mean`, `clip_ratio/region_mean` and `ratio` (generated
/// tokens, as grpo), entropy, mean_p.
public final class PrefixRFTObjective: Objective, DetachedEvaluable, RevealedPrefixObjective {
    public let prefixTermIgnoresAdvantage = false
    public let name = "prefix-rft"
    public let requirements: ObjectiveRequirements
    public let hybrid: Int, minPrefix: Int
    public let lowStart: Double, lowEnd: Double, high: Double
    public let entropyMask: Float, entropyCoef: Float, epsilonLow: Float, epsilonHigh: Float
    /// D; 0 until `configure` sets it to the run's steps when not given.
    public private(set) var decaySteps: Int
    /// Dr.GRPO's L_max; set from `max_completion_length` when the run is wired.
    public var maxCompletionLength = 0
    private let cache = StepCache<EntropySelection>()

    public init(hybrid: Int = 1, lowStart: Double = 0.95, lowEnd: Double = 0.05, high: Double = 1, decaySteps: Int = 0,
                minPrefix: Int = 1, entropyMask: Float = 0.8, entropyCoef: Float = 0.001, epsilon: Float = 0.2,
                epsilonHigh: Float? = nil) throws {
        try checkArg(hybrid >= 1, "prefix-rft", "hybrid must be >= 1, got \(hybrid)")
        try checkArg([lowStart, lowEnd, high].allSatisfy { (0...1).contains($0) }, "prefix-rft", "low_start, low_end and high must be in [0, 1]")
        try checkArg(decaySteps >= 0 && minPrefix >= 0, "prefix-rft", "decay_steps and min_prefix must be >= 0")
        try checkArg((0...1).contains(entropyMask), "prefix-rft", "entropy_mask must be in [0, 1], got \(entropyMask)")
        try checkArg(entropyCoef >= 0, "prefix-rft", "entropy_coef must be >= 0")
        try checkArg(epsilon >= 0 && epsilon < 1, "prefix-rft", "epsilon must be in [0, 1), got \(epsilon)")
        try checkArg((epsilonHigh ?? epsilon) >= 0, "prefix-rft", "epsilon_high must be >= 0")
        self.hybrid = hybrid; self.lowStart = lowStart; self.lowEnd = lowEnd; self.high = high
        self.decaySteps = decaySteps; self.minPrefix = minPrefix; self.entropyMask = entropyMask
        self.entropyCoef = entropyCoef; self.epsilonLow = epsilon; self.epsilonHigh = epsilonHigh ?? epsilon
        var r = ObjectiveRequirements(statisticsPass: true, behaviourLogProbs: true)
        r.rollouts = true
        requirements = r
    }

    // MARK: prefix sampling (the producer's side)

    public func configure(settings: RolloutSettings, totalSteps: Int) throws {
        guard hybrid <= settings.rollouts else {
            throw RecipeError("objective prefix-rft: hybrid (\(hybrid)) must be at most rollouts (\(settings.rollouts)): it is how many of a prompt's rollouts continue a prefix")
        }
        maxCompletionLength = settings.maxCompletionLength
        if decaySteps == 0 { decaySteps = max(1, totalSteps) }
    }

    /// low(t): cosine decay from low_start to low_end over `decay_steps`.
    public func low(step t: Int) -> Double {
        let d = max(decaySteps, 1)
        guard t <= d else { return lowEnd }
        return lowEnd + 0.5 * (1 + cos(Double.pi * Double(t) / Double(d))) * (lowStart - lowEnd)
    }

    public func scheduleValue(step: Int) -> Double { low(step: step) }

    public func revealed(answerTokens n: Int, rollouts G: Int, step: Int, random: inout SplitMix64) -> [Int] {
        let a = low(step: step), lower = min(a, high), higher = max(a, high)
        return (0..<G).map { i in
            guard i >= G - hybrid else { return 0 }
            let l = lower + (higher - lower) * (Double(random.next() >> 11) * 0x1p-53)
            return Self.prefixLength(fraction: l, answerTokens: n, minPrefix: minPrefix)
        }
    }

    /// max(min_prefix, ⌊l·n⌋), at most n − 1 (one answer token is always generated); 0 for l = 0 or n ≤ 1.
    static func prefixLength(fraction l: Double, answerTokens n: Int, minPrefix: Int) -> Int {
        guard n > 1, l > 0 else { return 0 }
        return min(max(minPrefix, Int(l * Double(n))), n - 1)
    }

    // MARK: the loss

    /// (sequence id, position, entropy) of every prefix loss token of this micro-batch
    /// (`EntropySelection`).
    public func statistics(_ input: ObjectiveInput) -> [Float] {
        let prefix = RevealedTokens.rows(input, objective: name)
        return EntropySelection.statistics(input) { prefix[$0] }
    }

    /// τ and the prefix tokens kept: those whose entropy is not below τ, the entropy at rank
    /// ⌊mask·n⌋ (ascending) of the step's n prefix tokens (τ = +∞ when every one is masked).
    static func selection(_ context: StepContext, mask: Float) -> EntropySelection {
        let tokens = EntropySelection.tokens(context)
        let sorted = tokens.map(\.entropy).sorted()
        let masked = Int(Double(mask) * Double(sorted.count))
        return EntropySelection(tokens, tau: masked < sorted.count ? sorted[masked] : Float.infinity)
    }

    public func beginStep(_ context: StepContext) {
        cache.store(context) { Self.selection($0, mask: entropyMask) }
    }

    public func evaluate(_ input: ObjectiveInput, detached: UnsafePointer<Float>, dlogits: UnsafeMutablePointer<Float>?) -> ObjectiveResult {
        let V = input.vocab
        let selection = cache.value(input.context, objective: name) { Self.selection($0, mask: entropyMask) }
        let prefix = RevealedTokens.rows(input, objective: name)
        let index = SequenceIndex(input.sequenceId)
        let counts = RevealedTokens.counts(input.sequences)
        let pgScale = inverseCount(input.sequences.count * max(maxCompletionLength, 1)), genScale = inverseCount(counts.generated)
        let lo = 1 - epsilonLow, hi = 1 + epsilonHigh
        var diag = TokenDiagnostics()
        var total = 0.0, ratioSum = 0.0, genCount = 0.0, kept = 0.0, prefixCount = 0.0, clip = ClipCounts()
        for r in 0..<input.rows where input.mask[r] != 0 {
            let y = lossTarget(input, r, name)
            let z = input.logits + r * V
            let lse = SoftmaxKernels.logSumExp(z, count: V)
            let logp = z[y] - lse, m = input.mask[r]
            let row = dlogits.map { $0 + r * V }
            let a = input.sequences[Int(input.sequenceId[r])].advantage
            let g: Float   // ∂L/∂logp of this token, already scaled
            if prefix[r] {
                let keep = selection.keeps(input, row: r, position: index.position[r])
                prefixCount += 1
                if keep { kept += 1 }
                let old = LogitRow.detachedLogProb(detached, input.logits, row: r, V, target: y, liveLogP: logp)
                let ppo = PPOClippedToken.loss(logp: logp, old: old, advantage: keep ? a : 0, low: lo, high: hi)
                total += Double(pgScale * m * ppo.loss)
                g = pgScale * m * ppo.dLogp
                diag.entropy += LogitRow.addScaledSoftmax(nil, z, lse: lse, V, scale: 0)
            } else {
                let old = PPOClippedToken.behaviourLogProb(input, row: r, live: logp, detached: detached)
                let ppo = PPOClippedToken.loss(logp: logp, old: old, advantage: a, low: lo, high: hi)
                clip.add(ppo)
                ratioSum += Double(ppo.ratio); genCount += 1
                let h = RevealedTokens.addEntropyBonus(row, z, lse: lse, V, scale: entropyCoef * genScale * m)
                total += Double(pgScale * m * ppo.loss) - Double(entropyCoef * genScale * m) * h
                g = pgScale * m * ppo.dLogp
                diag.entropy += h
            }
            // ∂ℓ/∂z_v = ∂ℓ/∂logp · ([v = y] − p_v).
            if g != 0, let row {
                _ = LogitRow.addScaledSoftmax(row, z, lse: lse, V, scale: -g)
                row[y] += g
            }
            diag.sumP += Double(expf(logp)); diag.count += 1
        }
        // Each rank adds τ once per micro-batch; the count makes the reported value τ itself.
        var d: [String: Double] = ["ratio": ratioSum, "prefix_kept": kept]
        var c: [String: Double] = ["ratio": genCount, "prefix_kept": prefixCount]
        clip.into(&d, &c, tokens: genCount)
        if selection.tau.isFinite, prefixCount > 0 { d["entropy_threshold"] = Double(selection.tau); c["entropy_threshold"] = 1 }
        diag.into(&d, &c)
        return ObjectiveResult(loss: total, diagnostics: d, diagnosticCounts: c)
    }
}
