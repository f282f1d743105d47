import ArgumentParser
import Distributed
import Foundation
import Training

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fine-tune a model (the default subcommand).",
        discussion: """
        Settings come from --config recipe.yaml, then from flags, which override the recipe. \
        --batch-size is global (all ranks together); each rank runs micro-batches of \
        --micro-batch-size examples and accumulates. Losses are normalised by global token \
        counts, so -n 1, -n 2 and -n 4 give the same losses.
        """)

    @Option(name: .long, help: "YAML recipe; flags override its keys.") var config: String?
    @Option(help: "Preset (default, tiny, small, gpt2-mini) or a model directory.") var model: String?
    @Option(help: "Training JSONL ({prompt, completion} or {messages}), or builtin:tasks.") var data: String?
    @Option(help: "Held-out JSONL (default: a split of --data).") var heldout: String?
    @Option(name: .customLong("heldout-fraction"), help: "Fraction of --data held out when --heldout is not given.") var heldoutFraction: Double?
    @Option(help: "Optimizer steps.") var steps: Int?
    @Option(name: .customLong("batch-size"), help: "Global batch size in examples.") var batchSize: Int?
    @Option(name: .customLong("micro-batch-size"), help: "Examples per forward pass on one rank.") var microBatchSize: Int?
    @Option(help: "Peak learning rate.") var lr: Double?
    @Option(name: .customLong("min-lr-ratio"), help: "Final learning rate as a fraction of the peak.") var minLRRatio: Double?
    @Option(name: .customLong("warmup-steps"), help: "Linear warmup steps.") var warmupSteps: Int?
    @Option(help: "Learning-rate schedule: cosine, linear or constant.") var schedule: String?
    @Option(help: "adamw or sgd.") var optimizer: String?
    @Option(name: .customLong("weight-decay"), help: "Decoupled weight decay (matrices only).") var weightDecay: Double?
    @Option(name: .customLong("grad-clip"), help: "Clip the global gradient norm (0 = off).") var gradClip: Double?
    @Option(help: "Seed for initialisation, data order and sampling.") var seed: UInt64?
    @Option(help: "Output directory (metrics.jsonl, loss.svg, model/).") var out: String?
    @Option(name: .customLong("max-length"), help: "Maximum tokens per example.") var maxLength: Int?
    @Option(help: "Truncation of over-long examples: right, left or drop.") var truncation: String?
    @Flag(inversion: .prefixedNo, help: "Pack several examples per row instead of padding.") var packing: Bool?
    @Option(name: .customLong("chat-template"), help: "Template for {messages} data: auto (the model's own), chatml, llama3 or plain.") var chatTemplate: String?
    @Option(name: .customLong("save-format"), help: "Final model: native, or hf (also Hugging Face tokenizer files for the byte tokenizer).") var saveFormat: String?
    @Option(help: "Training objective (nll, …; see README).") var objective: String?
    @Option(name: .customLong("objective-arg"), help: "Objective parameter key=value (repeatable).") var objectiveArg: [String] = []
    @Option(name: .customLong("ref-model"), help: "Reference model directory for objectives that need one.") var refModel: String?
    @Option(name: .customLong("eval-every"), help: "Evaluate every N steps (0: before and after only; -1, the default: four times).") var evalEvery: Int?
    @Option(name: .customLong("eval-examples"), help: "Held-out examples used for generation accuracy.") var evalExamples: Int?
    @Option(name: .customLong("max-new-tokens"), help: "Generation length in evaluation.") var maxNewTokens: Int?
    @Option(name: .customLong("log-every"), help: "Progress line every N steps when not on a terminal.") var logEvery: Int?
    @Option(name: .customLong("checksum-every"), help: "Compare replica checksums every N steps (0: end only).") var checksumEvery: Int?
    @Flag(name: .customLong("skip-bad-lines"), help: "Skip and count malformed JSONL lines instead of stopping.") var skipBadLines = false
    @Option(name: .customLong("nan-policy"), help: "On a non-finite loss or gradient: abort or skip.") var nanPolicy: String?
    @Option(name: .customLong("save-every"), help: "Write a checkpoint to OUT/checkpoints/ every N steps (0: none).") var saveEvery: Int?
    @Option(name: .customLong("keep-last"), help: "Checkpoints to keep, oldest deleted first (0: all).") var keepLast: Int?
    @Option(help: "Continue from a checkpoint directory, or \"latest\" in OUT/checkpoints/ (starts fresh if there is none).") var resume: String?
    @Option(name: .customLong("watchdog"), help: "Abort the job when a collective waits this many seconds (a rank died or hung; 0: off).") var watchdog: Double?
    @Flag(name: .customLong("overlap-grad-sync"), inversion: .prefixedNo,
          help: "Start each block's gradient sum while backward continues (default on).") var overlapGradSync: Bool?
    @Option(help: "OpenBLAS threads per rank (default: OPENBLAS_NUM_THREADS).") var threads: Int?
    @Flag(help: "Print nothing but errors.") var quiet = false

    func run() throws {
        let comm = Runtime.start(threads: threads)
        let recipe = Fatal.collective { try makeRecipe() }
        Runtime.setWatchdog(seconds: recipe.watchdogSeconds)
        TrainingJob.run(recipe: recipe, comm: comm, quiet: quiet)
        Runtime.finish()
    }

    func makeRecipe() throws -> Recipe {
        var r = try config.map(Recipe.load) ?? Recipe()
        if let v = model { r.model = v }
        if let v = data { r.data = v }
        if let v = heldout { r.heldout = v }
        if let v = heldoutFraction { r.heldoutFraction = v }
        if let v = steps { r.steps = v }
        if let v = batchSize { r.batchSize = v }
        if let v = microBatchSize { r.microBatchSize = v }
        if let v = lr { r.lr = v }
        if let v = minLRRatio { r.minLRRatio = v }
        if let v = warmupSteps { r.warmupSteps = v }
        if let v = schedule { r.schedule = v }
        if let v = optimizer { r.optimizer = v }
        if let v = weightDecay { r.weightDecay = v }
        if let v = gradClip { r.gradClip = v }
        if let v = seed { r.seed = v }
        if let v = out { r.out = v }
        if let v = maxLength { r.maxLength = v }
        if let v = truncation { r.truncation = v }
        if let v = packing { r.packing = v }
        if let v = chatTemplate { r.chatTemplate = v }
        if let v = saveFormat { r.saveFormat = v }
        if let v = objective { r.objective = v }
        for kv in objectiveArg {
            let parts = kv.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw RecipeError("--objective-arg \(kv): expected key=value")
            }
            r.objectiveArgs[parts[0]] = parts[1]
        }
        if let v = refModel { r.refModel = v }
        if let v = evalEvery { r.evalEvery = v }
        if let v = evalExamples { r.evalExamples = v }
        if let v = maxNewTokens { r.maxNewTokens = v }
        if let v = logEvery { r.logEvery = v }
        if let v = checksumEvery { r.checksumEvery = v }
        if skipBadLines { r.skipBadLines = true }
        if let v = nanPolicy { r.nanPolicy = v }
        if let v = overlapGradSync { r.overlapGradSync = v }
        if let v = saveEvery { r.saveEvery = v }
        if let v = keepLast { r.keepLast = v }
        if let v = resume { r.resume = v }
        if let v = watchdog { r.watchdogSeconds = v }
        try r.validate()
        return r
    }
}
