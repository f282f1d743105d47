import Foundation
import TensorCore

/// Objectives whose rollouts may continue a revealed prefix of the prompt's demonstration
/// (UFT, arXiv 2505.16984 §3; Prefix-RFT, arXiv 2507.01679 §3): the objective says how many
/// demonstration tokens each of a prompt's G rollouts is shown, the rollout producer generates
/// the continuations and trains prefix and continuation together.
public protocol RevealedPrefixObjective: Objective {
    /// Revealed tokens for each of a prompt's `rollouts` rollouts, given its demonstration's
    /// `answerTokens` (the answer without the final stop token) at optimizer step `step`, drawing
    /// from `random` (a stream of its own per (seed, generation, prompt)). 0 = a plain rollout.
    func revealed(answerTokens: Int, rollouts: Int, step: Int, random: inout SplitMix64) -> [Int]
    /// Called once at start-up with what the run fixes (the rollout settings, the recipe's steps);
    /// throws for arguments that do not fit them.
    func configure(settings: RolloutSettings, totalSteps: Int) throws
    /// The schedule's value at `step` (UFT: the hint probability p(t); Prefix-RFT: the lower
    /// bound of the revealed fraction), logged as `reveal_schedule`.
    func scheduleValue(step: Int) -> Double
    /// Whether the revealed tokens' term leaves out the rollout's advantage (UFT's log-likelihood
    /// on the hint; Prefix-RFT's −A·π/sg(π) does not): under mask_truncated_completions a cut
    /// hybrid then keeps its prefix trained, else it trains nothing, prefix included.
    var prefixTermIgnoresAdvantage: Bool { get }
}

/// The demonstrations a `RevealedPrefixObjective` reveals: prompt i of the producer answers
/// training row `exampleOfPrompt[i]`, whose answer (the tokens after its prompt, up to but not
/// including its last trained token — the stop token, which the model must still produce) is the
/// demonstration. A hybrid rollout's generation prompt is prompt + the first k answer tokens
/// (k capped so the prompt still leaves `max_completion_length` tokens of context), its sequence
/// prompt + prefix + continuation with `promptLength` at the end of the prefix and the prefix
/// trained with the demonstration's own loss mask: so a trained position before `promptLength` is
/// a revealed token, which is how the objectives tell them apart (`RevealedTokens`). Every draw is
/// a pure function of (seed, generation, prompt position), so the rollouts are the same at any
/// rank count, and a resumed run regenerates nothing it has not checkpointed.
public struct RevealedPrefixes {
    public let objective: RevealedPrefixObjective
    public let examples: [Example]
    public let exampleOfPrompt: [Int]
    /// The longest generation prompt: the context minus `max_completion_length`.
    public let promptLimit: Int

    /// Per rollout of one generation: the generation prompt and the revealed tokens with their loss mask.
    public struct Plan {
        public var prompts: [[Int32]]
        public var revealed: [[Int32]]
        public var revealedMask: [[UInt8]]
    }

    /// nil unless the recipe's objective reveals prefixes; it needs the training rows' own
    /// prompts (their completions are the demonstrations), so `--prompts` is refused.
    public init?(setup: RunSetup, prompts: [RolloutPrompt], settings: RolloutSettings, promptLimit: Int) throws {
        guard let objective = setup.objective as? RevealedPrefixObjective else { return nil }
        guard setup.recipe.prompts == nil, prompts.allSatisfy({ $0.example != nil }) else {
            throw RecipeError("objective \(objective.name) continues a revealed prefix of each prompt's demonstration: its prompts must be the training rows of --data (their completions are the demonstrations), not --prompts")
        }
        try objective.configure(settings: settings, totalSteps: setup.recipe.steps)
        self.objective = objective
        examples = setup.train.examples
        exampleOfPrompt = prompts.map { $0.example! }
        self.promptLimit = promptLimit
    }

    /// The answer of a demonstration: its tokens after the prompt up to (not including) its last
    /// trained token, with their loss mask.
    static func answer(_ e: Example) -> (ids: ArraySlice<Int32>, mask: ArraySlice<UInt8>) {
        guard let last = e.lossMask.lastIndex(of: 1), last > e.promptLength else { return ([], []) }
        return (e.ids[e.promptLength..<last], e.lossMask[e.promptLength..<last])
    }

    /// Prompt j's stream of generation g: apart from the sampling streams (seed_g, i).
    static func stream(generationSeed: UInt64, prompt j: Int) -> SplitMix64 {
        var mix = SplitMix64(seed: generationSeed ^ 0x5052_4546_4958)   // "PREFIX"
        mix.state &+= UInt64(j + 1) &* 0xD1B5_4A32_D192_ED03
        return SplitMix64(seed: mix.next())
    }

    /// The generation's rollouts: prompt `chosen[j]` repeated G times, each with its revealed prefix.
    public func plan(chosen: [Int], prompts: [RolloutPrompt], rollouts G: Int, step: Int, generationSeed: UInt64) -> Plan {
        var plan = Plan(prompts: [], revealed: [], revealedMask: [])
        for (j, c) in chosen.enumerated() {
            let prompt = prompts[c].ids
            let answer = Self.answer(examples[exampleOfPrompt[c]])
            var random = Self.stream(generationSeed: generationSeed, prompt: j)
            let counts = objective.revealed(answerTokens: answer.ids.count, rollouts: G, step: step, random: &random)
            precondition(counts.count == G && counts.allSatisfy { (0...answer.ids.count).contains($0) },
                         "objective \(objective.name) revealed \(counts) of \(answer.ids.count) answer tokens for \(G) rollouts")
            for k in counts {
                let shown = min(k, promptLimit - prompt.count)
                let ids = Array(answer.ids.prefix(shown))
                plan.prompts.append(prompt + ids)
                plan.revealed.append(ids)
                plan.revealedMask.append(Array(answer.mask.prefix(shown)))
            }
        }
        return plan
    }

    /// Rollout i's sequence (prompt + prefix + continuation, `promptLength` after the prefix)
    /// with the prefix trained as the demonstration's loss mask says.
    public static func mark(_ s: inout StepSequence, plan: Plan, rollout i: Int) {
        let k = plan.revealed[i].count
        guard k > 0 else { return }
        let start = s.promptLength - k
        for t in 0..<k { s.lossMask[start + t] = plan.revealedMask[i][t] }
        s.origin = .prefixRollout
    }

    /// The step's `reveal_schedule`, `prefix_rollouts` (share of the step's rollouts that continue a
    /// prefix) and `revealed_tokens` (mean revealed tokens per rollout), from the sequences alone
    /// so a resumed run reports what the uninterrupted one did.
    public func metrics(_ sequences: [StepSequence], step: Int) -> [(String, Double)] {
        let rollouts = sequences.filter { $0.origin == .rollout || $0.origin == .prefixRollout }
        guard !rollouts.isEmpty else { return [] }
        let revealed = rollouts.map { s in s.lossMask[1..<max(1, s.promptLength)].reduce(0) { $0 + Int($1) } }
        let n = Double(rollouts.count)
        return [("reveal_schedule", objective.scheduleValue(step: step)),
                ("prefix_rollouts", Double(rollouts.filter { $0.origin == .prefixRollout }.count) / n),
                ("revealed_tokens", Double(revealed.reduce(0, +)) / n)]
    }
}
