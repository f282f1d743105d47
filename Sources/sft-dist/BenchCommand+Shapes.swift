import Distributed
import Foundation
import Models
import TensorCore
import Training

/// `sft-dist bench --shape NAME | --model DIR [--batch-size B] [--seq-len T]`: the benchmark
/// on a public model's shape (random weights) or a model directory instead of gpt2-mini.
extension Bench {
    func validateModelChoice() throws {
        if let b = batchSize { try Settings.batchSize.named("batch_size").check(b) }
        try Settings.maxLength.named("seq_len").check(seqLen)
        if shape != nil && model != nil { throw RecipeError("--shape and --model are alternatives; give one") }
        if let s = shape, ModelPresets.shape(s) == nil { throw Benchmark.BenchModel.unknownShape(s) }
        if loraRank > 0 && model != nil { throw RecipeError("--lora-rank is for gpt2-mini and --shape (a --model directory is benchmarked as it is)") }
        // As train refuses it: a rank above a module's width (4096 on gpt2-mini's 384 made
        // 151 M adapter parameters on a 13.9 M model).
        if loraRank > 0 {
            if let s = shape, let config = ModelPresets.shape(s) {
                _ = try Benchmark.BenchModel.lora(rank: loraRank, llama: true)?.resolved(for: .llama(config.family.rawValue), plan: config.layoutPlan)
            } else if shape == nil, let config = ModelPresets.gpt2("gpt2-mini", vocabSize: 8192) {
                _ = try Benchmark.BenchModel.lora(rank: loraRank, llama: false)?.resolved(for: .gpt2, plan: config.layoutPlan)
            }
        }
        if againstFull {
            if loraRank == 0 { throw RecipeError("--against-full compares LoRA with full fine-tuning: give --lora-rank r > 0") }
            if rollouts || model != nil || selection != nil || zero != 0 || recompute || (generateTokensFlag ?? 0) > 0 {
                throw RecipeError("--against-full runs gpt2-mini or --shape with --lora-rank only (not with --rollouts, --model, --selection, --zero, --recompute or --generate-tokens above 0: it times training steps only)")
            }
        }
        if rollouts && (shape != nil || model != nil || batchSize != nil || seqLen != 256) {
            throw RecipeError("--rollouts runs gpt2-mini only (--shape, --model, --batch-size and --seq-len are for training)")
        }
        // The rollout benchmark generates only, and the selection pass is timed on gpt2-mini's
        // default batch only: these were accepted there and silently did nothing.
        if rollouts, let context = ModelPresets.gpt2("gpt2-mini", vocabSize: 8192)?.contextLength, generateTokens > context - 16 {
            // It stopped at the context and still reported the tokens asked for.
            throw RecipeError("--generate-tokens \(generateTokens): gpt2-mini's context of \(context) tokens leaves \(context - 16) after the rollouts' 16-token prompts")
        }
        // The training benchmark's generation stopped at the context and reported what it got
        // (240 of --generate-tokens 300), where --rollouts refuses; a --shape or --model is
        // checked once built (`chosenModel`).
        if !rollouts && shape == nil && model == nil, let context = ModelPresets.gpt2("gpt2-mini", vocabSize: 8192)?.contextLength,
           generateTokens > context - Benchmark.generationPromptTokens {
            throw RecipeError(Self.generationTooLong(generateTokens, model: "gpt2-mini", context: context))
        }
        if let m = model, ModelPresets.names.contains(m), !FileManager.default.fileExists(atPath: m) {
            throw RecipeError("--model takes a model directory; \(m) is a train preset, not benchmarked (bench without --model times gpt2-mini; --shape NAME for public shapes)")
        }
        if rollouts && (zero != 0 || recompute || selection != nil || loraRank > 0 || overlapGradSync != nil) {
            throw RecipeError("--rollouts times generation only: --zero, --recompute, --selection, --lora-rank and --[no-]overlap-grad-sync are for the training step")
        }
        if selection != nil && (shape != nil || model != nil || batchSize != nil || seqLen != 256) {
            throw RecipeError("--selection times its scoring pass on gpt2-mini's batch 8×256 only (not with --shape, --model, --batch-size or --seq-len)")
        }
    }

    /// The options with this command's --seq-len and --batch-size (default 4 with a shape or model).
    func chosenOptions(_ options: Benchmark.Options) -> Benchmark.Options {
        var o = options
        o.seqLen = seqLen
        o.batch = batchSize ?? (shape == nil && model == nil ? o.batch : 4)
        return o
    }

    /// Builds the chosen model on every rank, with adapters of `loraRank` (a load error, or a
    /// --seq-len beyond its context, ends all ranks once).
    func chosenModel(_ o: Benchmark.Options, loraRank: Int) -> Benchmark.BenchModel {
        let chosen = Fatal.collective { () throws -> Benchmark.BenchModel in
            if let s = shape { return try .shape(s, seed: o.seed, lora: Benchmark.BenchModel.lora(rank: loraRank, llama: true)) }
            if let dir = model { return try .directory(dir) }
            return .gpt2Mini(vocab: o.vocab, seed: o.seed, lora: Benchmark.BenchModel.lora(rank: loraRank, llama: false))
        }
        if let dir = model {
            // As train and eval check: a stale copy on one node benchmarked another model with exit 0.
            SameInputs.check("--model \(dir)", architecture: chosen.model)
            SameInputs.check("--model \(dir)", model: chosen.model.parameters)
        }
        let context = chosen.model.maxSequenceLength
        Fatal.agree(seqLen > context ? "--seq-len \(seqLen)\(seqLen == 256 ? " (the default)" : "") is longer than \(chosen.name)'s context (\(context) tokens): give --seq-len \(context) or less" : nil)
        // Only a --generate-tokens given: the default 64 stops at a small model's context, as
        // the generation note then says (a saved `tiny` run, context 64, generates 48).
        Fatal.agree(!againstFull && generateTokensFlag != nil && generateTokens > context - Benchmark.generationPromptTokens
                    ? Self.generationTooLong(generateTokens, model: chosen.name, context: context) : nil)
        return chosen
    }

    static func generationTooLong(_ tokens: Int, model: String, context: Int) -> String {
        "--generate-tokens \(tokens): \(model)'s context of \(context) tokens leaves \(context - Benchmark.generationPromptTokens) after the benchmark's \(Benchmark.generationPromptTokens)-token prompt"
    }

    func runChosenModel(_ options: Benchmark.Options, comm: Communicator, log: (String) -> Void) -> Benchmark.Result {
        let o = chosenOptions(options)
        return Benchmark.run(o, model: chosenModel(o, loraRank: o.loraRank), comm: comm, log: log)
    }

    /// `--against-full`: the LoRA model and the same base for full fine-tuning, steps alternating.
    func runAgainstFull(_ options: Benchmark.Options, comm: Communicator, log: (String) -> Void) -> Benchmark.PairResult {
        let o = chosenOptions(options)
        return Benchmark.loraAgainstFull(o, lora: chosenModel(o, loraRank: o.loraRank), full: chosenModel(o, loraRank: 0),
                                         comm: comm, log: log)
    }
}
