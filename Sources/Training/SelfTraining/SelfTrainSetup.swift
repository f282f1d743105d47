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
        if let spin = setup.objective as? SPINObjective {
            Fatal.collective {
                if r.selfTrain != SelfTrainMethod.none.rawValue { throw RecipeError("objective spin makes its own pairs; drop --self-train \(r.selfTrain)") }
                if r.unlabelled != nil { throw RecipeError("objective spin answers the prompts of --data; drop --unlabelled") }
                if r.refModel != nil { throw RecipeError("objective spin's reference is the model of the previous iteration; drop --ref-model") }
            }
            return SPINProducer(source: UniformSampler(datasetSize: setup.train.count, batchSize: r.batchSize, seed: r.seed),
                                prompts: labelledPrompts(setup), iterationSteps: spin.iterationSteps, temperature: 1,
                                maxNewTokens: r.maxNewTokens, maxLength: min(r.maxLength, setup.model.maxSequenceLength))
        }
        let (method, options) = Fatal.collective { () throws -> (SelfTrainRound?, SelfTrainOptions) in
            let options = try SelfTrainOptions(recipe: r)
            try check(options, recipe: r, pairs: setup.objective.requirements.pairs)
            guard options.method != .none else { return (nil, options) }
            let scoring = try options.scorer.map(SelfTrainScoring.init(name:))
            switch options.method {
            case .none: return (nil, options)
            case .semievol:
                let template = try ChatTemplate.resolve(r.chatTemplate, tokenizer: setup.tokenizer).template
                let (prompts, warning) = try UnlabelledPrompts.read(path: r.unlabelled!, tokenizer: setup.tokenizer, template: template,
                                                                   maxLength: min(r.maxLength, setup.model.maxSequenceLength),
                                                                   skipBadLines: r.skipBadLines)
                if let warning, comm.isCoordinator { FileHandle.standardError.write(Data("sft-dist: warning: \(warning)\n".utf8)) }
                return (SemiEvolRound(unlabelled: prompts, options: options, scoring: scoring, seed: r.seed), options)
            case .rft:
                return (RejectionSamplingRound(labelled: labelledPrompts(setup), options: options, scoring: scoring!, seed: r.seed), options)
            case .ssr, .s3ft:
                return (SelfGeneratedTargetsRound(labelled: labelledPrompts(setup), options: options, scoring: scoring!, seed: r.seed),
                        options)
            }
        }
        guard let method else { return nil }
        return SelfTrainProducer(labelled: UniformSampler(datasetSize: setup.train.count, batchSize: r.batchSize, seed: r.seed),
                                 method: method, options: options, seed: r.seed, out: r.out,
                                 maxLength: min(r.maxLength, setup.model.maxSequenceLength), vocabSize: setup.model.vocabSize)
    }

    static func check(_ o: SelfTrainOptions, recipe r: Recipe, pairs: Bool) throws {
        let flag = "--self-train \(o.method.rawValue)"
        if o.method == .none {
            if r.unlabelled != nil { throw RecipeError("--unlabelled is read by --self-train semievol; give it, or drop --unlabelled") }
            return
        }
        if pairs { throw RecipeError("\(flag) trains on demonstrations; objective \(r.objective) trains on preference pairs") }
        if o.method.needsScorer && o.scorer == nil {
            throw RecipeError("\(flag) needs --self-train-scorer (\(SelfTrainScoring.names.joined(separator: ", "))): it keeps only the model's answers the scorer accepts")
        }
        switch o.method {
        case .semievol:
            if r.unlabelled == nil { throw RecipeError("\(flag) needs --unlabelled FILE (prompts without answers)") }
        case .rft, .ssr, .s3ft:
            if r.unlabelled != nil { throw RecipeError("\(flag) answers the labelled prompts of --data; --unlabelled is for semievol") }
        case .none: break
        }
    }

    /// The training set's rows as prompts with their gold answers.
    static func labelledPrompts(_ setup: RunSetup) -> [SelfTrainPrompt?] {
        setup.train.examples.enumerated().map { i, e in
            SelfTrainPrompt(example: e, index: i, tokenizer: setup.tokenizer, reference: e.answer)
        }
    }
}
