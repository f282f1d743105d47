import ArgumentParser
import Distributed
import Foundation
import TensorCore
import Training

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmark the training step: gpt2-mini, batch 8×256, AdamW, fp32, synthetic tokens.",
        discussion: """
        Reports tokens/s, model FLOP/s against the SGEMM ceiling measured in the same run, the \
        time in the gradient allreduce, peak RSS against the computed need, and generation \
        tokens/s. Under mpirun the numbers are for all ranks together (the global batch stays \
        8 sequences). scripts/bench compares 1 rank × 2 threads with 2 ranks × 1 thread; \
        scripts/bench-peer runs PyTorch on the same configuration.
        """)

    @Option(Settings.threads) var threads: Int?
    @Option(Settings.steps.named("steps", help: "Timed steps.")) var steps = 6
    @Option(warmupSetting) var warmup = 2
    static let generateTokensSetting = Setting<Int>("generate_tokens", .within(0...65_536), "Tokens to generate for the generation rate (0: skip).")
    static let warmupSetting = Settings.warmupSteps.named("warmup", help: "Untimed warm-up steps.")
    @Option(generateTokensSetting) var generateTokens = 64
    @Flag(name: .customLong("overlap-grad-sync"), inversion: .prefixedNo,
          help: "Overlap the gradient allreduce with backward, as training does by default.") var overlapGradSync = true
    @Flag(help: "One JSON line instead of the table.") var json = false
    @Option(help: "Train LoRA adapters of this rank (α = 2r) on c_attn, c_proj and c_fc instead of every weight (0: full fine-tuning).")
    var loraRank = 0
    @Flag(help: "No per-step lines on standard error.") var quiet = false

    func validate() throws {
        try Settings.threads.check(threads)
        guard (0...4096).contains(loraRank) else { throw RecipeError("--lora-rank must be an integer in 0…4096 (got \(loraRank))") }
        try Settings.steps.check(steps)
        try Self.warmupSetting.check(warmup)
        try Self.generateTokensSetting.check(generateTokens)
    }

    func run() throws {
        let comm = Runtime.start(threads: threads)
        var o = Benchmark.Options(threads: BLAS.threads)
        o.steps = steps; o.warmup = warmup; o.generateTokens = generateTokens; o.overlapGradSync = overlapGradSync
        o.loraRank = loraRank
        let lead = comm.isCoordinator
        let r = Benchmark.run(o, comm: comm, log: { if lead && !quiet { printError($0) } })
        if lead { print(json ? r.json : r.table) }
        Runtime.finish()
    }
}
