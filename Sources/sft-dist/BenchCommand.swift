import ArgumentParser
import Distributed
import Foundation
import Models
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
    @Option(generateTokensSetting, default: "64") var generateTokensFlag: Int?
    var generateTokens: Int { generateTokensFlag ?? 64 }
    @Flag(name: .customLong("overlap-grad-sync"), inversion: .prefixedNo,
          help: "Overlap the gradient allreduce with backward, as training does by default.") var overlapGradSync: Bool?
    @Flag(help: "Benchmark rollout generation instead of training: --rollout-prompts prompts of 16 tokens, --generate-tokens sampled tokens each (T = 1), KV cache; --steps timed runs after --warmup.") var rollouts = false
    static let rolloutPromptsSetting = Setting<Int>("rollout_prompts", .within(1...4096), "Prompts per rollout batch (with --rollouts; default 32).")
    @Option(rolloutPromptsSetting) var rolloutPrompts: Int?
    @Option(parsing: .unconditional, help: "ZeRO stage (0, 1, 2), as train's --zero.") var zero = 0
    @Flag(help: "Re-run each transformer block's forward in backward, as train's --recompute.") var recompute = false
    @Flag(help: "One JSON line instead of the table.") var json = false
    @Option(help: "Also time online selection's scoring pass with this selector (uds, q-tuning, loss, learnability, random).")
    var selection: String?
    @Option(name: .customLong("selection-pool"), parsing: .unconditional, help: "Candidates = this × the batch, for --selection (default 4).") var selectionPool: Int?
    static let loraRankSetting = Setting<Int>("lora_rank", .within(0...4096), "Train LoRA adapters of this rank (α = 2r) instead of every weight: on c_attn, c_proj and c_fc of gpt2-mini, on q/k/v/o/gate/up/down_proj with --shape (0: full fine-tuning).")
    @Option(loraRankSetting) var loraRank = 0
    @Flag(name: .customLong("against-full"), help: "With --lora-rank: also build the same model for full fine-tuning and alternate the two trainers' steps in this process; reports LoRA's step ÷ full fine-tuning's per adjacent pair (the machine's drift between separate runs cancels). Both models stay resident, so no memory figures.")
    var againstFull = false
    @Option(help: "Train a public model's shape with random weights instead of gpt2-mini: \(ModelPresets.shapeNames.joined(separator: ", ")) (nothing is downloaded; llama-mini is gpt2-mini's shape in the Llama family).") var shape: String?
    @Option(help: "Train a Hugging Face model directory (its config and weights) instead of gpt2-mini.") var model: String?
    @Option(Settings.batchSize.named("batch_size", help: "Global sequences per step (default 8 for gpt2-mini, 4 with --shape or --model).")) var batchSize: Int?
    @Option(Settings.maxLength.named("seq_len", help: "Tokens per sequence.")) var seqLen = 256
    @Flag(help: "No per-step lines on standard error.") var quiet = false

    func validate() throws {
        try Settings.threads.check(threads)
        try Self.loraRankSetting.check(loraRank)
        try Settings.steps.check(steps)
        try Self.warmupSetting.check(warmup)
        try Self.generateTokensSetting.check(generateTokens)
        try Self.rolloutPromptsSetting.check(rolloutPrompts)
        if rollouts && generateTokens == 0 { throw RecipeError("--rollouts needs --generate-tokens of at least 1") }
        // Settings of a mode that is not running would be silently ignored: refuse them.
        if rolloutPrompts != nil && !rollouts { throw RecipeError("--rollout-prompts needs --rollouts") }
        if selectionPool != nil && selection == nil { throw RecipeError("--selection-pool needs --selection") }
        guard (0...2).contains(zero) else { throw ValidationError("--zero must be 0, 1 or 2, got \(zero)") }
        if let s = selection, !SelectionRegistry.names.dropFirst().contains(s) {
            throw ValidationError("--selection must be one of \(SelectionRegistry.names.dropFirst().joined(separator: ", ")) (got \(s))")
        }
        if let pool = selectionPool, !(1...1024).contains(pool) { throw ValidationError("--selection-pool must be an integer in 1…1024 (got \(pool))") }
        try validateModelChoice()   // BenchCommand+Shapes.swift
    }

    func run() throws {
        let comm = Runtime.start(threads: threads)
        // Ranks given other settings deadlocked (--zero on one rank) or reported rank 0's
        // batch as everyone's.
        SameInputs.check(settings: [("steps", "\(steps)"), ("warmup", "\(warmup)"), ("generate-tokens", "\(generateTokens)"),
                                    ("overlap-grad-sync", "\(overlapGradSync ?? true)"), ("rollouts", "\(rollouts)"),
                                    ("rollout-prompts", "\(rolloutPrompts ?? 32)"), ("zero", "\(zero)"), ("recompute", "\(recompute)"),
                                    ("json", "\(json)"), ("selection", selection ?? "none"), ("selection-pool", "\(selectionPool ?? 4)"),
                                    ("lora-rank", "\(loraRank)"), ("against-full", "\(againstFull)"), ("shape", shape ?? "gpt2-mini"),
                                    ("model", model ?? "none"), ("batch-size", batchSize.map { "\($0)" } ?? "default"), ("seq-len", "\(seqLen)"),
                                    // A timing with mixed counts was reported as rank 0's layout.
                                    ("threads (or OPENBLAS_NUM_THREADS)", "\(BLAS.threads)")])
        var o = Benchmark.Options(threads: BLAS.threads)
        o.steps = steps; o.warmup = warmup; o.generateTokens = generateTokens; o.overlapGradSync = overlapGradSync ?? true
        o.zero = zero; o.recompute = recompute
        o.loraRank = loraRank
        let lead = comm.isCoordinator
        let log = { (line: String) in if lead && !quiet { printError(line) } }
        func finish(json j: String, table: String) { if lead { print(json ? j : table) }; Runtime.finish() }
        if rollouts {
            var ro = Benchmark.RolloutOptions(threads: BLAS.threads)
            ro.prompts = rolloutPrompts ?? 32; ro.newTokens = generateTokens; ro.runs = steps; ro.warmup = warmup
            let r = Benchmark.rollouts(ro, comm: comm, log: log)
            return finish(json: r.json, table: r.table)
        }
        if againstFull {
            let r = runAgainstFull(o, comm: comm, log: log)
            return finish(json: r.json, table: r.table)
        }
        if shape != nil || model != nil || batchSize != nil || seqLen != 256 {
            let r = runChosenModel(o, comm: comm, log: log)
            return finish(json: r.json, table: r.table)
        }
        let r = Benchmark.run(o, comm: comm, log: log)
        guard let name = selection else { return finish(json: r.json, table: r.table) }
        // --selection: one more table line for the scoring pass; with --json its `selection*`
        // fields join the one JSON line (scripts/bench reads one line).
        let cost = Benchmark.selectionCost(o, name: name, pool: selectionPool ?? 4, args: [:], repeats: 3, comm: comm)
        finish(json: String(r.json.dropLast()) + ", " + String(cost.json.dropFirst()),
               table: r.table + "\n" + cost.line(trainingTokensPerSecond: r.tokensPerSecond, batch: o.batch,
                                                  stepCPU: comm.size == 1 ? r.medianStepCPU : nil))
    }
}
