import ArgumentParser
import Distributed
import Foundation
import Models
import Training

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fine-tune a model (the default subcommand).",
        discussion: """
        Settings come from --config recipe.yaml, then from flags, which override the recipe. \
        --batch-size is global (all ranks together); each rank runs micro-batches of \
        --micro-batch-size examples and accumulates. Losses are normalised by global token \
        counts, so -n 1, -n 2 and -n 4 give the same losses. SIGUSR1 (a batch system's warning \
        before a time limit; mpirun passes it on) saves a checkpoint after the current step and \
        exits 75: continue with --resume latest.
        """)

    @Option(name: .long, help: "YAML recipe; flags override its keys.") var config: String?
    // One line per recipe key: the name, help and limits are the key's (RecipeKeys).
    @Option(recipe: \.model) var model: String?
    @Option(recipe: \.data) var data: String?
    @Option(recipe: \.heldout) var heldout: String?
    @Option(recipe: \.heldoutFraction) var heldoutFraction: String?
    @Option(recipe: \.steps) var steps: String?
    @Option(recipe: \.numTrainEpochs) var numTrainEpochs: String?
    @Option(recipe: \.batchSize) var batchSize: String?
    @Option(recipe: \.microBatchSize) var microBatchSize: String?
    @Option(recipe: \.lr) var lr: String?
    @Option(recipe: \.minLRRatio) var minLRRatio: String?
    @Option(recipe: \.warmupSteps) var warmupSteps: String?
    @Option(recipe: \.schedule) var schedule: String?
    @Option(recipe: \.optimizer) var optimizer: String?
    @Option(recipe: \.beta1) var beta1: String?
    @Option(recipe: \.beta2) var beta2: String?
    @Option(recipe: \.adamEps) var adamEps: String?
    @Option(recipe: \.weightDecay) var weightDecay: String?
    @Option(recipe: \.momentum) var momentum: String?
    @Option(recipe: \.gradClip) var gradClip: String?
    @Option(recipe: \.seed) var seed: String?
    @Option(recipe: \.out) var out: String?
    @Option(recipe: \.maxLength) var maxLength: String?
    @Option(recipe: \.truncation) var truncation: String?
    @Flag(recipe: \.packing) var packing: Bool?
    @Option(recipe: \.chatTemplate) var chatTemplate: String?
    @Option(recipe: \.datasetTextField) var datasetTextField: String?
    @Flag(recipe: \.completionOnlyLoss) var completionOnlyLoss: Bool?
    @Flag(recipe: \.assistantOnlyLoss) var assistantOnlyLoss: Bool?
    @Option(recipe: \.objective) var objective: String?
    @Option(recipe: \.objectiveArgs) var objectiveArgs: [String]
    @Option(recipe: \.refModel) var refModel: String?
    @Flag(recipe: \.syncRefModel) var syncRefModel: Bool?
    @Option(recipe: \.refModelMixupAlpha) var refModelMixupAlpha: String?
    @Option(recipe: \.refModelSyncSteps) var refModelSyncSteps: String?
    @Flag(recipe: \.precomputeRefLogProbs) var precomputeRefLogProbs: Bool?
    @Option(recipe: \.precomputeRefBatchSize) var precomputeRefBatchSize: String?
    @Option(recipe: \.selection) var selection: String?
    @Option(recipe: \.selectionPool) var selectionPool: String?
    @Option(recipe: \.selectionArgs) var selectionArgs: [String]
    @Option(recipe: \.evalEvery) var evalEvery: String?
    @Option(recipe: \.evalExamples) var evalExamples: String?
    @Option(recipe: \.maxNewTokens) var maxNewTokens: String?
    @Option(recipe: \.evalData) var evalData: [String]
    @Option(recipe: \.checksumEvery) var checksumEvery: String?
    @Option(recipe: \.logEvery) var logEvery: String?
    @Flag(recipe: \.skipBadLines) var skipBadLines: Bool?
    @Option(recipe: \.nanPolicy) var nanPolicy: String?
    @Option(recipe: \.nanSkipLimit) var nanSkipLimit: String?
    @Flag(recipe: \.overlapGradSync) var overlapGradSync: Bool?
    @Option(selection: \.freeze) var freeze: [String]
    @Option(selection: \.trainable) var trainable: [String]
    @Option(recipe: \.l2Init) var l2Init: String?
    @Option(recipe: \.ema) var ema: String?
    @Flag(recipe: \.bema) var bema: Bool?
    @Option(recipe: \.bemaUpdateFreq) var bemaUpdateFreq: String?
    @Option(recipe: \.bemaEmaPower) var bemaEmaPower: String?
    @Option(recipe: \.bemaBiasPower) var bemaBiasPower: String?
    @Option(recipe: \.bemaLag) var bemaLag: String?
    @Option(recipe: \.bemaUpdateAfter) var bemaUpdateAfter: String?
    @Option(recipe: \.bemaMultiplier) var bemaMultiplier: String?
    @Option(recipe: \.bemaMinEmaMultiplier) var bemaMinEmaMultiplier: String?
    @Flag(recipe: \.bemaUpdateRefModel) var bemaUpdateRefModel: Bool?
    @Option(recipe: \.bemaRefModelUpdateFreq) var bemaRefModelUpdateFreq: String?
    @Option(recipe: \.bemaRefModelUpdateAfter) var bemaRefModelUpdateAfter: String?
    @Option(recipe: \.saveFormat) var saveFormat: String?
    @Option(recipe: \.saveEvery) var saveEvery: String?
    @Option(recipe: \.keepLast) var keepLast: String?
    @Option(recipe: \.resume) var resume: String?
    @Option(recipe: \.unlabelled) var unlabelled: String?
    @Option(recipe: \.selfTrain) var selfTrain: String?
    @Option(recipe: \.selfTrainEvery) var selfTrainEvery: String?
    @Option(recipe: \.selfTrainScorer) var selfTrainScorer: String?
    @Option(recipe: \.selfTrainArgs) var selfTrainArgs: [String]
    @Option(recipe: \.zero) var zero: String?
    @Flag(recipe: \.recompute) var recompute: Bool?
    @Option(recipe: \.watchdogSeconds) var watchdogSeconds: String?
    @Option(recipe: \.prompts) var prompts: String?
    @Option(recipe: \.rollouts) var rollouts: String?
    @Option(recipe: \.rolloutTemperature) var rolloutTemperature: String?
    @Option(recipe: \.rolloutTopP) var rolloutTopP: String?
    @Option(recipe: \.rolloutTopK) var rolloutTopK: String?
    @Option(recipe: \.maxCompletionLength) var maxCompletionLength: String?
    @Option(recipe: \.stepsPerGeneration) var stepsPerGeneration: String?
    @Option(recipe: \.numIterations) var numIterations: String?
    @Option(recipe: \.evalRollouts) var evalRollouts: String?
    @Flag(recipe: \.maskTruncatedCompletions) var maskTruncatedCompletions: Bool?
    @Option(recipe: \.rewards) var rewards: [String]
    @Option(recipe: \.rewardArgs) var rewardArgs: [String]
    @Option(recipe: \.scaleRewards) var scaleRewards: String?
    @Option(recipe: \.multiObjectiveAggregation) var multiObjectiveAggregation: String?
    @Flag(recipe: \.scoredData) var scoredData: Bool?
    @Option(recipe: \.loraRank) var loraRank: String?
    @Option(recipe: \.loraAlpha) var loraAlpha: String?
    @Option(recipe: \.loraDropout) var loraDropout: String?
    @Option(selection: \.loraTargets) var loraTargets: [String]
    @Flag(recipe: \.mergeLora) var mergeLora: Bool?
    @Option(recipe: \.neftuneNoiseAlpha) var neftuneNoiseAlpha: String?
    @Option(Settings.threads) var threads: Int?
    @Flag(help: "Print nothing but errors.") var quiet = false
    @Flag(name: .customLong("dry-run"), help: "Check the recipe and flags as a run would before loading anything, print the resulting recipe (recipe.yaml) and exit; nothing is read, loaded or written.")
    var dryRun = false

    func validate() throws {
        try Settings.threads.check(threads)
    }

    func run() throws {
        if dryRun {
            // One process is enough to check a recipe: other ranks of an mpirun leave at once.
            Runtime.singleProcess("sft-dist train --dry-run")
            let recipe = try makeRecipe()
            try ModelPresets.refuseAmbiguous(recipe.model)
            if let problem = RunOutputInputs.modelDirectoryAsOutput(recipe.out) { throw OutputError(problem) }
            // Notes go to stderr: stdout is the recipe, to be saved and run (`> r.yaml`).
            if !quiet { for note in recipe.notes + recipe.uncheckedWithoutData { StandardError.write(note + "\n") } }
            print(recipe.yaml, terminator: "")
            return
        }
        let comm = Runtime.start(threads: threads)
        let recipe = Fatal.collective { try makeRecipe() }
        Runtime.setWatchdog(seconds: recipe.watchdogSeconds)
        let summary = TrainingJob.run(recipe: recipe, comm: comm, quiet: quiet)
        Runtime.finish()
        // Stopped by SIGUSR1 after a checkpoint: not done, resumable (the job script resubmits).
        if summary.stoppedAfter != nil { Runtime.exit(StopSignal.exitCode) }
    }

    /// The recipe file's keys, then the flags given, each applied by the recipe key whose
    /// property name it has (checked: every property is a key or one of `notRecipeKeys`, and
    /// every key has a flag).
    func makeRecipe() throws -> Recipe {
        var r = try config.map(Recipe.load) ?? Recipe()
        let methods = [(Recipe.declared.objective, objective), (Recipe.declared.selection, selection), (Recipe.declared.selfTrain, selfTrain)]
        r.dropArgumentsOfReplacedMethods(flags: Dictionary(uniqueKeysWithValues: methods.compactMap { k, v in v.map { (k.name, $0) } }))
        var flagged = Set<String>()
        for child in Mirror(reflecting: self).children {
            let name = String((child.label ?? "").drop { $0 == "_" })
            if Self.notRecipeKeys.contains(name) { continue }
            guard let key = Recipe.keys.first(where: { $0.property == name })?.key else {
                fatalError("Train.\(name) is neither a recipe key (RecipeKeys) nor in Train.notRecipeKeys")
            }
            flagged.insert(name)
            switch child.value {
            case let o as Option<String?>: if let text = o.wrappedValue { try key.read(flag: text, into: &r) }
            case let o as Option<[String]>: try key.read(flags: o.wrappedValue, into: &r)
            case let f as Flag<Bool?>: if let on = f.wrappedValue { try key.read(flag: on ? "true" : "false", into: &r) }
            default: fatalError("Train.\(name): a recipe flag is declared with @Option(recipe:) or @Flag(recipe:)")
            }
        }
        if let missing = Recipe.keys.first(where: { !flagged.contains($0.property) }) {
            fatalError("recipe key \(missing.key.name) has no train flag (add @Option(recipe: \\.\(missing.property)) to Train)")
        }
        try r.validate()
        return r
    }

    static let notRecipeKeys: Set<String> = ["config", "threads", "quiet", "dryRun"]
}
