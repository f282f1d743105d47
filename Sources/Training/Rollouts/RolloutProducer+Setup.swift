import Foundation
import Models

extension RolloutProducer {
    /// The rollout producer a recipe describes, checked at start-up: reward functions (one at
    /// least), prompts (`--prompts FILE` or the prompts of `--data`) fitted to the context minus
    /// `max_completion_length` as `--truncation` says, a reference on every prompt when a
    /// reward function compares with one, and `batch_size` a multiple of `rollouts`.
    public convenience init(setup: RunSetup) throws {
        let r = setup.recipe
        let objective = setup.objective.name
        guard !r.rewards.isEmpty else {
            throw RecipeError("objective \(objective) samples rollouts and needs a reward: give --reward NAME[=WEIGHT] (or a rewards: list), NAME one of \(RewardFunction.names.joined(separator: ", "))")
        }
        let settings = try RolloutSettings(recipe: r)
        let functions = try RewardFunction.make(specs: r.rewards, args: r.rewardArgs)
        guard functions.contains(where: { $0.weight != 0 }) else {
            throw RecipeError("every reward weight is 0 (\(r.rewards.joined(separator: ", "))): every advantage would be 0 and nothing would train")
        }
        let limit = try settings.promptLimit(context: min(r.maxLength, setup.model.maxSequenceLength))
        let raw: [RolloutPrompt], origin: String
        if let path = r.prompts {
            let template = try ChatTemplate.resolve(r.chatTemplate, tokenizer: setup.tokenizer).template
            raw = try RolloutPrompts.fromFile(path, tokenizer: setup.tokenizer, template: template)
            origin = path
        } else {
            raw = RolloutPrompts.fromExamples(setup.train.examples)
            origin = r.data
        }
        try RolloutPrompts.checkCutPrompts(raw, limit: limit, truncation: r.truncation, rewards: functions, tokenizer: setup.tokenizer)
        let prompts = try RolloutPrompts.fit(raw, limit: limit, truncation: r.truncation, origin: origin)
        try RolloutPrompts.checkReferences(prompts, rewards: functions)
        try RolloutPrompts.checkTaskPrompts(prompts, rewards: functions, tokenizer: setup.tokenizer)
        (setup.objective as? GRPOObjective)?.maxCompletionLength = settings.maxCompletionLength
        self.init(settings: settings, prompts: prompts, rewards: functions,
                  stopId: RolloutPrompts.stopId(setup.train.examples, tokenizer: setup.tokenizer))
        if setup.objective is GroupedDemonstrationObjective {
            guard r.prompts == nil else {
                throw RecipeError("objective \(objective) puts each prompt's demonstration in its rollout group: its prompts must be the training rows of --data, not --prompts")
            }
            groupedDemonstrations = GroupedDemonstrations(examples: setup.train.examples, exampleOfPrompt: prompts.map { $0.example! })
        } else if let mixing = setup.objective as? DemonstrationMixing {
            demonstrations = DemonstrationShare(examples: setup.train.examples,
                                                count: DemonstrationShare.count(share: mixing.expertShare, rollouts: settings.batchSize),
                                                seed: r.seed)
        }
        revealedPrefixes = try RevealedPrefixes(setup: setup, prompts: prompts, settings: settings, promptLimit: limit)
    }
}
