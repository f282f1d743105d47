import Foundation
import Models
import TensorCore

extension RolloutProducer {
    /// The rollout producer a recipe describes, checked at start-up: reward functions (one at
    /// least), prompts (`--prompts FILE` or the prompts of `--data`) fitted to the context minus
    /// `max_completion_length` as `--truncation` says, a reference on every prompt when a
    /// reward function compares with one, and `batch_size` a multiple of `rollouts`.
    public convenience init(setup: RunSetup) throws {
        let r = setup.recipe
        let objective = setup.objective.name
        let settings = try RolloutSettings(recipe: r, objective: setup.objective)
        let functions = try RewardFunction.forRollouts(specs: r.rewards, args: r.rewardArgs)
        try r.checkRewards(functions, objective: setup.objective)
        // Every rank holds each reward model: rollouts are scored by all ranks together.
        for case let model as RewardModelScorer in functions.map(\.scorer) { try model.load() }
        // What sets the context: max_length, or the model's (a Mistral sliding_window says so).
        let model = setup.model, modelBinds = model.maxSequenceLength <= r.maxLength
        let setBy = !modelBinds ? "max_length" : "the model's context" + (model.contextReason.map { ": " + $0 } ?? "")
        let limit = try settings.promptLimit(context: min(r.maxLength, model.maxSequenceLength), setBy: setBy)
        let raw: [RolloutPrompt], origin: String
        var skipped: [SkippedLine] = []
        if let path = r.prompts {
            let template = try ChatTemplate.resolve(r.chatTemplate, tokenizer: setup.tokenizer).template
            (raw, skipped) = try RolloutPrompts.fromFile(path, tokenizer: setup.tokenizer, template: template, skipBadLines: r.skipBadLines)
            origin = path
        } else {
            raw = RolloutPrompts.fromExamples(setup.train.examples)
            origin = r.data
        }
        try RolloutPrompts.checkNonEmpty(raw)
        try RolloutPrompts.checkCutPrompts(raw, limit: limit, truncation: r.truncation, rewards: functions, tokenizer: setup.tokenizer,
                                           maxLengthBinds: !modelBinds, contextReason: model.contextReason)
        try RolloutPrompts.checkDefaultCut(raw, limit: limit, truncationGiven: r.truncationGiven, origin: origin)
        var prompts = try RolloutPrompts.fit(raw, limit: limit, truncation: r.truncation, origin: origin)
        // An external scorer reads each row's other fields (TRL's reward kwargs): read again from
        // the rows' files, training and held-out at once, only when one is in use.
        let columns = functions.contains { $0.scorer is ExternalScorer }
            ? RowColumns.of(prompts.map(\.source) + setup.heldOut.examples.map(\.source)) : [:]
        for i in prompts.indices { prompts[i].columns = columns[prompts[i].source] }
        try RolloutPrompts.checkReferences(prompts, rewards: functions)
        try RolloutPrompts.checkTaskPrompts(prompts, rewards: functions, tokenizer: setup.tokenizer)
        let demonstrations = (setup.objective as? DemonstrationMixing)
            .map { DemonstrationShare.count(share: $0.expertShare, rollouts: settings.batchSize) } ?? 0
        try Self.checkGenerationMemory(settings, prompts: prompts, demonstrations: demonstrations, examples: setup.train.examples)
        (setup.objective as? GRPOObjective)?.maxCompletionLength = settings.maxCompletionLength
        self.init(settings: settings, prompts: prompts, rewards: functions,
                  stopId: RolloutPrompts.stopId(setup))
        promptNote = RolloutPrompts.note(raw, limit: limit, truncation: r.truncation, origin: origin, skipped: skipped)
        eosIds = Evaluator.eosIds(setup.tokenizer, model: setup.model)
        if setup.objective is GroupedDemonstrationObjective {
            guard r.prompts == nil else {
                throw RecipeError("objective \(objective) puts each prompt's demonstration in its rollout group: its prompts must be the training rows of --data, not --prompts")
            }
            groupedDemonstrations = GroupedDemonstrations(examples: setup.train.examples, exampleOfPrompt: prompts.map { $0.example! })
        } else if setup.objective is DemonstrationMixing {
            self.demonstrations = DemonstrationShare(examples: setup.train.examples, count: demonstrations, seed: r.seed)
        }
        revealedPrefixes = try RevealedPrefixes(setup: setup, prompts: prompts, settings: settings, promptLimit: limit)
        if let online = setup.objective as? OnlineDPOObjective { rankedPairs = RankedPairs.Settings(penalty: online.missingEOSPenalty) }
        if let rloo = setup.objective as? RLOOObjective {
            let penalty = rloo.beta > 0
                ? setup.referenceModel.map { LeaveOneOutAdvantages.Penalty(reference: $0, beta: Double(rloo.beta), temperature: settings.temperature) }
                : nil
            precondition(rloo.beta == 0 || penalty != nil, "objective rloo with beta > 0 needs the reference model loaded")
            leaveOneOut = (penalty, rloo.normalizeAdvantages, rloo.rewardClipRange)
        }
        if ["online-dpo", "a2po"].contains(objective) { unscorableRefusedBy = objective }
        if ["srft", "relift"].contains(objective) { firstRewardReadBy = objective }
        try prepareEvaluation(setup, limit: limit, maxLengthBinds: !modelBinds)
        for i in evaluationPrompts.indices { evaluationPrompts[i].columns = columns[evaluationPrompts[i].source] }
        if let a2po = setup.objective as? A2POObjective { optimalValues = OptimalValues(objective: a2po, producer: self) }
    }

    /// The eos ids a rollout run on this set-up stops at besides the data's end token, in order
    /// (`eosIds`: the tokenizer's eos under chat turns that end otherwise, a generation_config.json
    /// with another eos_token_id, as Qwen2.5-Instruct's); none for another run.
    static func stopsBeyondTheData(_ setup: RunSetup) -> [Int32] {
        guard setup.recipe.samplesRollouts(setup.objective) else { return [] }
        let data = RolloutPrompts.stopId(setup)
        return Evaluator.eosIds(setup.tokenizer, model: setup.model).subtracting([data]).sorted()
    }

    /// A generation holds `batch_size × steps_per_generation` rollouts of up to the prompt plus
    /// `max_completion_length` tokens, and each step its demonstrations (CHORD's `expert_share`
    /// s gives s/(1−s) per rollout): about 24 bytes per token (ids, log-probs, mask, the
    /// generation's own copy). One that cannot fit is refused at start-up (exit 5), as a
    /// selection pool is: `expert_share=0.9999999` (1.3·10⁸ demonstrations a step) filled 20 GB
    /// in 30 s, and under `ulimit -v` a 14 GB allocation ended the process with a trap.
    static func checkGenerationMemory(_ s: RolloutSettings, prompts: [RolloutPrompt], demonstrations: Int, examples: [Example],
                                      available: Int? = MemoryBudget.availableBytes()) throws {
        let bytesPerToken = 24
        let meanPrompt = prompts.isEmpty ? 0 : prompts.reduce(0) { $0 + $1.ids.count } / prompts.count
        let meanExample = examples.isEmpty ? 0 : examples.reduce(0) { $0 + $1.ids.count } / examples.count
        let (rollouts, o1) = s.batchSize.multipliedReportingOverflow(by: s.stepsPerGeneration)
        let (rolloutTokens, o2) = rollouts.multipliedReportingOverflow(by: meanPrompt + s.maxCompletionLength)
        let (demoTokens, o3) = demonstrations.multipliedReportingOverflow(by: meanExample)
        let (tokens, o4) = rolloutTokens.addingReportingOverflow(demoTokens)
        let (bytes, o5) = tokens.multipliedReportingOverflow(by: bytesPerToken)
        let overflow = o1 || o2 || o3 || o4 || o5
        guard let available, overflow || bytes > available else { return }
        let demos = demonstrations > 0 ? " and \(demonstrations) demonstrations a step (expert_share)" : ""
        throw ModelError("out of memory: a generation of \(overflow && o1 ? "more than Int.max" : "\(rollouts)") rollouts (batch_size \(s.batchSize) × steps_per_generation \(s.stepsPerGeneration), up to \(meanPrompt) + \(s.maxCompletionLength) tokens each)\(demos) needs about \(CheckedAllocation.describe(bytes: overflow ? Int.max : bytes)), more than the \(CheckedAllocation.describe(bytes: available)) available (a smaller --batch-size, --steps-per-generation\(demonstrations > 0 ? ", --max-completion-length or expert_share" : " or --max-completion-length"))", outOfMemory: true)
    }
}
