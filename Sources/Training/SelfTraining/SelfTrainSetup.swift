import Distributed
import Foundation
import Models

/// Start-up of `--self-train`: the options, the scorer and the prompts, with every misuse an
/// error before the first step (collective, one line): a method that needs a scorer without
/// one, semievol without `--unlabelled`, `--unlabelled` that nothing reads, pair objectives.
public enum SelfTrainSetup {
    /// The producer for the recipe's method, or nil without `--self-train`.
    public static func producer(setup: RunSetup, comm: Communicator) -> StepProducer? {
        let r = setup.recipe
        // Recipe.validate has run these checks (so --dry-run refuses the same); a setup built
        // from a recipe in code gets them here.
        Fatal.collective { try check(SelfTrainOptions(recipe: r), recipe: r, objective: setup.objective) }
        if let spin = setup.objective as? SPINObjective {
            return SPINProducer(source: UniformSampler(datasetSize: setup.train.count, batchSize: r.batchSize, seed: r.seed),
                                prompts: labelledPrompts(setup), iterationSteps: spin.iterationSteps, temperature: 1,
                                maxNewTokens: r.maxNewTokens, maxLength: min(r.maxLength, setup.model.maxSequenceLength))
        }
        let (method, options) = Fatal.collective { () throws -> (SelfTrainRound?, SelfTrainOptions) in
            let options = try SelfTrainOptions(recipe: r)
            guard options.method != .none else { return (nil, options) }
            let scoring = try options.scorer.map { try SelfTrainScoring(name: $0, rewardArgs: r.rewardArgs) }
            func unlabelled(_ path: String) throws -> [SelfTrainPrompt] {
                let template = try ChatTemplate.resolve(r.chatTemplate, tokenizer: setup.tokenizer).template
                let (prompts, warning) = try UnlabelledPrompts.read(path: path, tokenizer: setup.tokenizer, template: template,
                                                                   maxLength: min(r.maxLength, setup.model.maxSequenceLength),
                                                                   skipBadLines: r.skipBadLines)
                if let warning, comm.isCoordinator { StandardError.write("sft-dist: warning: \(warning)\n") }
                return prompts
            }
            switch options.method {
            case .none: return (nil, options)
            case .semievol:
                let prompts = try unlabelled(r.unlabelled!)
                try checkTaskPrompts(prompts, scorers: scoring.map { [$0.scorer] } ?? [])
                return (SemiEvolRound(unlabelled: prompts, options: options, scoring: scoring, seed: r.seed), options)
            case .superhf:
                let prompts = try r.unlabelled.map(unlabelled) ?? labelledPrompts(setup).compactMap { $0 }
                let rewards = try superHFRewards(r, scoring: scoring, objective: setup.objective, prompts: prompts)
                try checkTaskPrompts(prompts, scorers: rewards.map(\.scorer) + (scoring.map { [$0.scorer] } ?? []))
                return (SuperHFRound(candidates: prompts, options: options, rewards: rewards, scoring: scoring, seed: r.seed), options)
            case .rft:
                let prompts = labelledPrompts(setup)
                try checkTaskPrompts(prompts.compactMap { $0 }, scorers: [scoring!.scorer])
                return (RejectionSamplingRound(labelled: prompts, options: options, scoring: scoring!, seed: r.seed), options)
            case .ssr, .s3ft:
                let prompts = labelledPrompts(setup)
                try checkTaskPrompts(prompts.compactMap { $0 }, scorers: [scoring!.scorer])
                return (SelfGeneratedTargetsRound(labelled: prompts, options: options, scoring: scoring!, seed: r.seed,
                                                  paraphrase: options.method == .s3ft), options)
            }
        }
        guard let method else { return nil }
        return SelfTrainProducer(labelled: UniformSampler(datasetSize: setup.train.count, batchSize: r.batchSize, seed: r.seed),
                                 method: method, options: options, seed: r.seed, out: r.out,
                                 maxLength: min(r.maxLength, setup.model.maxSequenceLength), vocabSize: setup.model.vocabSize)
    }

    /// The misuse the recipe alone shows (`Recipe.validate` calls it): what `objective`, the
    /// method and their files need of each other.
    static func check(_ o: SelfTrainOptions, recipe r: Recipe, objective: Objective) throws {
        let flag = "--self-train \(o.method.rawValue)", pairs = objective.requirements.pairs
        if objective is SPINObjective {
            if o.method != .none { throw RecipeError("objective spin makes its own pairs; drop \(flag)") }
            if r.unlabelled != nil { throw RecipeError("objective spin answers the prompts of --data; drop --unlabelled") }
            if r.refModel != nil { throw RecipeError("objective spin's reference is the model of the previous iteration; drop --ref-model") }
            return
        }
        if o.method == .none {
            if r.unlabelled != nil { throw RecipeError("--unlabelled is read by --self-train semievol or superhf; give one, or drop --unlabelled") }
            return
        }
        if pairs { throw RecipeError("\(flag) trains on demonstrations; objective \(r.objective) trains on preference pairs") }
        if o.method.needsScorer && o.scorer == nil {
            throw RecipeError("\(flag) needs --self-train-scorer (\(SelfTrainScoring.names.joined(separator: ", "))): it keeps only the model's answers the scorer accepts")
        }
        // The scorer with its arguments (a regex without its pattern is refused here).
        if let name = o.scorer { _ = try SelfTrainScoring(name: name, rewardArgs: r.rewardArgs) }
        switch o.method {
        case .semievol:
            if r.unlabelled == nil { throw RecipeError("\(flag) needs --unlabelled FILE (prompts without answers)") }
        case .rft, .ssr, .s3ft:
            if r.unlabelled != nil { throw RecipeError("\(flag) answers the labelled prompts of --data; --unlabelled is for semievol and superhf") }
        case .superhf:
            guard objective is SuperHFObjective else {
                throw RecipeError("\(flag) trains with --objective superhf (SFT on the best completions + kl_coefficient·KL to the initial model), not \(objective.name)")
            }
            if r.rewards.isEmpty && o.scorer == nil {
                throw RecipeError("\(flag) ranks completions by a reward: give --reward NAME[=WEIGHT] (NAME one of \(RewardFunction.names.joined(separator: ", "))) or --self-train-scorer")
            }
        case .none: break
        }
    }

    /// SuperHF's reward: the `--reward` functions, else the `--self-train-scorer` (weight 1); every
    /// prompt must carry a reference when one compares with it.
    static func superHFRewards(_ r: Recipe, scoring: SelfTrainScoring?, objective: Objective,
                               prompts: [SelfTrainPrompt]) throws -> [RewardFunction] {
        // `check` has refused another objective and a run with neither rewards nor a scorer.
        let rewards = r.rewards.isEmpty ? scoring.map { [$0.rewardFunction] } ?? []
                                        : try RewardFunction.forRollouts(specs: r.rewards, args: r.rewardArgs)
        if let f = rewards.first(where: \.needsReference), let p = prompts.first(where: { $0.reference == nil }) {
            throw RecipeError("\(p.source): reward \(f.name) compares with a reference answer and this prompt has none (\(r.unlabelled == nil ? "no answer" : "--unlabelled"))")
        }
        return rewards
    }

    /// The task scorer reads the rule from the end of each prompt, so every prompt a round may
    /// draw is checked at start-up: a prompt that is not a built-in task ended the run at the
    /// round that drew it (step 27 of 60, metrics and round files written, no model saved).
    static func checkTaskPrompts(_ prompts: [SelfTrainPrompt], scorers: [Scorer]) throws {
        guard scorers.contains(where: { $0 is TaskScorer }) else { return }
        for p in prompts where TaskScorer.answer(toPromptEnding: p.text) == nil {
            throw DataError("\(p.source): the task scorer reads a built-in task prompt (make-data) at the end of what the model sees, and this prompt ends with \(RecipeError.quote(String(p.text.suffix(30)))) (a chat template or {messages} row wraps it: give {prompt} rows, which no template wraps, or another scorer)")
        }
    }

    /// The training set's rows as prompts with their gold answers.
    static func labelledPrompts(_ setup: RunSetup) -> [SelfTrainPrompt?] {
        setup.train.examples.enumerated().map { i, e in
            SelfTrainPrompt(example: e, index: i, tokenizer: setup.tokenizer, reference: e.answer)
        }
    }
}
