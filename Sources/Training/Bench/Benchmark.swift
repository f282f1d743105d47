import Distributed
import Foundation
import Models
import TensorCore

/// `sft-dist bench`: trains the `gpt2-mini` configuration (GPT-2, 6 layers, d=384, 6 heads,
/// context 256, vocabulary 8192, 13.9 M parameters) on synthetic tokens through the real
/// `Trainer.step` (coordinator broadcast, sharding, forward, objective, backward, gradient
/// allreduce, clipping, AdamW) and reports throughput against the machine's own SGEMM
/// ceiling, measured in the same run.
///
/// Model FLOPs per token = 6·N (N = all parameters; the tied LM head is a GEMM over wte)
/// + 6·L·T·C for causal attention (QKᵀ and P·V, forward and backward, over the T/2 keys a
/// query sees on average). This is the conservative count: the full-square convention
/// (12·L·T·C) would add ~4 %.
public enum Benchmark {
    public struct Options: Sendable {
        public var steps = 6
        public var warmup = 2
        public var batch = 8          // global sequences per step
        public var seqLen = 256
        public var vocab = 8192
        public var threads: Int       // per rank
        public var seed: UInt64 = 1234
        public var generateTokens = 64
        public var overlapGradSync = true
        public init(threads: Int) { self.threads = threads }
    }

    public struct Result: Sendable {
        public var ranks: Int
        public var threadsPerRank: Int
        public var parameters: Int
        public var batch: Int, seqLen: Int, vocab: Int
        public var stepSeconds: [Double]       // timed steps, rank 0 wall clock
        public var medianStep: Double
        public var tokensPerSecond: Double
        public var flopsPerToken: Double
        public var modelFlops: Double          // FLOP/s, all ranks
        public var sgemmCeiling: Double        // FLOP/s, all ranks (1024³ sgemm, same run)
        public var computeSeconds: Double      // median over steps of the slowest rank
        public var syncSeconds: Double         // median per-step time in the gradient allreduce (max over ranks)
        public var updateSeconds: Double
        public var peakRSS: Int                // bytes, max over ranks
        public var needBytes: Int              // params + grads + Adam m, v + activations, per rank
        public var activationBytes: Int
        public var generationTokensPerSecond: Double?
        public var generationNote: String
        public var coreType: String
        public var blasCore: String
        public var firstLoss: Double, lastLoss: Double

        public var ceilingRatio: Double { modelFlops / sgemmCeiling }
        public var syncFraction: Double { syncSeconds / medianStep }
        public var rssRatio: Double { Double(peakRSS) / Double(needBytes) }

        public var json: String {
            var f: [(String, String)] = [
                ("ranks", "\(ranks)"), ("threads_per_rank", "\(threadsPerRank)"), ("parameters", "\(parameters)"),
                ("batch", "\(batch)"), ("seq_len", "\(seqLen)"), ("vocab", "\(vocab)"),
                ("median_step_s", num(medianStep)), ("step_s", "[" + stepSeconds.map(num).joined(separator: ",") + "]"),
                ("tokens_per_s", num(tokensPerSecond)), ("flops_per_token", num(flopsPerToken)),
                ("model_flops", num(modelFlops)), ("sgemm_ceiling_flops", num(sgemmCeiling)),
                ("ceiling_ratio", num(ceilingRatio)), ("compute_s", num(computeSeconds)),
                ("grad_sync_s", num(syncSeconds)), ("grad_sync_fraction", num(syncFraction)),
                ("update_s", num(updateSeconds)), ("peak_rss_bytes", "\(peakRSS)"), ("need_bytes", "\(needBytes)"),
                ("activation_bytes", "\(activationBytes)"), ("rss_ratio", num(rssRatio)),
                ("generation_tokens_per_s", generationTokensPerSecond.map(num) ?? "null"),
                ("generation", quote(generationNote)),
                ("openblas_coretype", quote(coreType)), ("openblas_core", quote(blasCore)),
                ("first_loss", num(firstLoss)), ("last_loss", num(lastLoss)),
            ]
            if !stepSeconds.isEmpty { f.append(("steps", "\(stepSeconds.count)")) }
            return "{" + f.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}"
        }

        public var table: String {
            func row(_ k: String, _ v: String) -> String { k.padding(toLength: 34, withPad: " ", startingAt: 0) + v }
            let mb = { (b: Int) in String(format: "%.0f MiB", Double(b) / 1_048_576) }
            return [
                "sft-dist bench: gpt2-mini (\(String(format: "%.2f", Double(parameters) / 1e6)) M parameters, vocab \(vocab)), batch \(batch)×\(seqLen) tokens, AdamW, fp32",
                row("layout", "\(ranks) rank\(ranks == 1 ? "" : "s") × \(threadsPerRank) thread\(threadsPerRank == 1 ? "" : "s")"),
                row("OPENBLAS_CORETYPE", "\(coreType) (OpenBLAS kernel: \(blasCore))"),
                row("step (median of \(stepSeconds.count))", String(format: "%.1f ms  (compute %.1f, grad sync %.1f, update %.1f)",
                                                                   medianStep * 1e3, computeSeconds * 1e3, syncSeconds * 1e3, updateSeconds * 1e3)),
                row("tokens/s", String(format: "%.0f", tokensPerSecond)),
                row("model FLOP/s", String(format: "%.1f GFLOP/s  (%.1f MFLOP/token)", modelFlops / 1e9, flopsPerToken / 1e6)),
                row("SGEMM ceiling (1024³, same run)", String(format: "%.1f GFLOP/s", sgemmCeiling / 1e9)),
                row("model FLOP/s ÷ ceiling", String(format: "%.1f %%", ceilingRatio * 100)),
                row("gradient sync / step", String(format: "%.2f %%", syncFraction * 100)),
                row("peak RSS per rank", "\(mb(peakRSS)) vs need \(mb(needBytes)) (activations \(mb(activationBytes))) = \(String(format: "%.2f×", rssRatio))"),
                row("generation (KV cache)", generationTokensPerSecond.map { String(format: "%.0f tokens/s", $0) + " (\(generationNote))" } ?? generationNote),
                row("loss", String(format: "%.4f → %.4f", firstLoss, lastLoss)),
            ].joined(separator: "\n")
        }
    }

    /// Floats held for the backward pass, computed from the configuration: per layer and
    /// token the residual stream, LN1 output, q|k|v, softmax probabilities (a full row of T
    /// per head), attention output, residual stream, LN2 output, MLP pre-activation and GELU
    /// output (16·C + H·T) plus 4 LayerNorm statistics; outside the layers the final residual
    /// stream and LN_f output (2·C + 2). Logits are not counted: the fused loss never stores them.
    public static func activationFloats(_ c: GPT2Config, batch: Int, seqLen: Int) -> Int {
        let C = c.embedDim, H = c.heads, N = batch * seqLen
        return c.layers * N * (16 * C + H * seqLen + 4) + N * (2 * C + 2)
    }

    public static func run(_ o: Options, comm: Communicator, log: (String) -> Void) -> Result {
        BLAS.threads = o.threads
        let config = ModelPresets.gpt2("gpt2-mini", vocabSize: o.vocab)!
        let model = GPT2(config: config, seed: o.seed)
        comm.broadcast(model.parameters.valueBuffer, root: 0)

        // Synthetic data: batch·(steps+warmup) sequences of seqLen+1 random ids, all trained.
        let total = o.steps + o.warmup
        var rng = RNG(seed: o.seed, stream: 77)
        let examples = (0..<(o.batch * total)).map { i -> Example in
            let ids = (0...o.seqLen).map { _ in Int32(rng.below(o.vocab)) }
            var mask = [UInt8](repeating: 1, count: ids.count); mask[0] = 0
            return Example(ids: ids, lossMask: mask, promptLength: 1, answer: nil, source: "synthetic:\(i)")
        }
        var recipe = Recipe()
        recipe.model = "gpt2-mini"; recipe.data = "synthetic"; recipe.steps = total
        recipe.batchSize = o.batch; recipe.microBatchSize = o.batch; recipe.maxLength = o.seqLen + 1
        recipe.lr = 3e-4; recipe.warmupSteps = 0; recipe.schedule = "constant"; recipe.weightDecay = 0.01
        recipe.beta1 = 0.9; recipe.beta2 = 0.999; recipe.gradClip = 1.0; recipe.seed = o.seed
        recipe.overlapGradSync = o.overlapGradSync
        let data = Dataset(examples: examples, report: LoadReport(path: "synthetic", maxLength: o.seqLen + 1, truncation: .right))
        let objective = Fatal.collective { try ObjectiveRegistry.make(name: "nll", args: [:]) }
        let setup = RunSetup(recipe: recipe, tokenizer: ByteTokenizer(), model: model, train: data, heldOut: data,
                             objective: objective, referenceModel: nil)
        let trainer = Trainer(setup: setup, comm: comm, source: SequentialBatches(batch: o.batch))

        // The SGEMM ceiling first, on every rank at once (as training runs them).
        let ceiling = sgemmCeiling(comm: comm, threads: o.threads)
        comm.barrier()
        let baseRSS = peakResidentBytes()

        var steps: [Double] = [], compute: [Double] = [], sync: [Double] = [], update: [Double] = []
        var losses: [Double] = []
        for s in 0..<total {
            let t0 = comm.wallTime()
            let r = trainer.step(s)
            let dt = comm.wallTime() - t0
            losses.append(r.loss)
            var t = [trainer.lastTimings.compute, trainer.lastTimings.gradientSync, trainer.lastTimings.update]
            comm.allreduce(&t, op: .max)
            if s >= o.warmup {
                steps.append(dt); compute.append(t[0]); sync.append(t[1]); update.append(t[2])
            }
            log(String(format: "step %d/%d: %.1f ms (compute %.1f, grad sync %.1f, update %.1f), loss %.4f%@",
                       s + 1, total, dt * 1e3, t[0] * 1e3, t[1] * 1e3, t[2] * 1e3, r.loss, s < o.warmup ? " (warm-up)" : ""))
        }
        let rss = Int(comm.allreduce(Int64(peakResidentBytes()), op: .max))
        log(String(format: "memory (rank 0): peak RSS %.0f MiB before the first step; arena %.0f MiB (activation gradients %.0f MiB); parameter store %.0f MiB ×2, Adam %.0f MiB",
                   Double(baseRSS) / 1048576, Double(trainer.arena.bytes) / 1048576, Double(trainer.arena.gradientBytes) / 1048576,
                   Double(model.parameters.count * 4) / 1048576, Double(model.parameters.count * 8) / 1048576))
        let median = Self.median(steps)
        let tokens = Double(o.batch * o.seqLen)
        let C = Double(config.embedDim), L = Double(config.layers), T = Double(o.seqLen)
        let flopsPerToken = 6 * Double(model.parameters.parameterCount) + 6 * L * T * C
        let perRankBatch = (o.batch + comm.size - 1) / comm.size
        let acts = activationFloats(config, batch: perRankBatch, seqLen: o.seqLen) * 4
        let need = 4 * 4 * model.parameters.count + acts

        let (genRate, genNote) = generationRate(model, tokens: o.generateTokens, comm: comm)
        let env = ProcessInfo.processInfo.environment
        return Result(ranks: comm.size, threadsPerRank: o.threads, parameters: model.parameters.parameterCount,
                      batch: o.batch, seqLen: o.seqLen, vocab: o.vocab, stepSeconds: steps, medianStep: median,
                      tokensPerSecond: tokens / median, flopsPerToken: flopsPerToken,
                      modelFlops: flopsPerToken * tokens / median, sgemmCeiling: ceiling,
                      computeSeconds: Self.median(compute), syncSeconds: Self.median(sync),
                      updateSeconds: Self.median(update), peakRSS: rss, needBytes: need, activationBytes: acts,
                      generationTokensPerSecond: genRate, generationNote: genNote,
                      coreType: env["OPENBLAS_CORETYPE"] ?? "(unset)", blasCore: BLAS.coreName,
                      firstLoss: losses.first ?? .nan, lastLoss: losses.last ?? .nan)
    }

    /// Best of several 1024×1024×1024 `cblas_sgemm` calls, with OpenBLAS's own threading at
    /// `threads` and as the model's GEMMs run, on every rank at the same time; FLOP/s summed
    /// over ranks.
    public static func sgemmCeiling(comm: Communicator, threads: Int) -> Double {
        let n = 1024
        let a = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
        let b = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
        let c = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
        defer { a.deallocate(); b.deallocate(); c.deallocate() }
        for i in 0..<(n * n) { a[i] = Float(i % 7) * 0.1; b[i] = Float(i % 5) * 0.1 }
        comm.barrier()
        // Best of 7 for OpenBLAS's own threading and for the GEMM as the model runs it (split
        // over our pool): on this 2-core machine OpenBLAS's 2-thread GEMM is the slower of the
        // two, and a ceiling below what the model reaches would measure nothing.
        var best = Double.infinity
        for _ in 0..<7 {
            let t0 = comm.wallTime()
            BLAS.openBLASGemm(threads: threads, m: n, n: n, k: n, a: a, b: b, c: c)
            best = min(best, comm.wallTime() - t0)
        }
        for _ in 0..<7 {
            let t0 = comm.wallTime()
            BLAS.gemm(transA: false, transB: false, m: n, n: n, k: n, a: a, lda: n, b: b, ldb: n, beta: 0, c: c, ldc: n)
            best = min(best, comm.wallTime() - t0)
        }
        let rate = 2 * Double(n * n * n) / best
        return comm.allreduce(rate, op: .sum)
    }

    /// Greedy decoding of `tokens` new tokens after a 16-token prompt, batch 1, on rank 0's
    /// model (every rank runs it; the slowest rank's rate is reported).
    static func generationRate(_ model: GPT2, tokens: Int, comm: Communicator) -> (Double?, String) {
        guard tokens > 0 else { return (nil, "not measured") }
        let prompt = (0..<16).map { Int32($0 * 37 % model.vocabSize) }
        let t0 = comm.wallTime()
        let out = Generator.generate(model, prompts: [prompt], options: SamplingOptions(maxNewTokens: tokens),
                                     rngs: [RNG(seed: 1)])
        let dt = comm.wallTime() - t0
        let rate = comm.allreduce(Double(out[0].ids.count) / dt, op: .min)
        return (rate, "batch 1, greedy, \(out[0].ids.count) tokens after a 16-token prompt")
    }

    /// Peak resident set (VmHWM) of this process in bytes.
    public static func peakResidentBytes() -> Int {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
            return kb * 1024
        }
        return 0
    }

    static func median(_ v: [Double]) -> Double {
        guard !v.isEmpty else { return .nan }
        let s = v.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}

/// Step s's global batch is examples s·batch ..< (s+1)·batch: every step sees fresh tokens
/// and the run is the same for any rank count.
final class SequentialBatches: BatchSource {
    let size: Int
    init(batch: Int) { size = batch }
    func batch(step: Int) -> [Int] { Array((step * size)..<((step + 1) * size)) }
    var state: [UInt64] { [] }
    func restore(_ state: [UInt64]) throws {}
}

private func num(_ x: Double) -> String { x.isFinite ? String(format: "%.6g", x) : "null" }
private func quote(_ s: String) -> String {
    "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
}
