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
        public var zero = 0             // --zero: ZeRO stage (Trainer+Memory.swift)
        public var recompute = false    // --recompute: blocks re-run in backward
        /// LoRA adapters of this rank on c_attn, c_proj and c_fc instead of full fine-tuning (0: off).
        public var loraRank = 0
        public init(threads: Int) { self.threads = threads }
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
        return run(o, model: .gpt2Mini(vocab: o.vocab, seed: o.seed, lora: BenchModel.lora(rank: o.loraRank, llama: false)), comm: comm, log: log)
    }

    /// The benchmark on `bench`'s model (`Benchmark+Shapes.swift`); synthetic ids span its
    /// vocabulary (`o.vocab` is only gpt2-mini's).
    public static func run(_ o: Options, model bench: BenchModel, comm: Communicator, log: (String) -> Void) -> Result {
        BLAS.threads = o.threads
        let model = bench.model
        var o = o; o.vocab = model.vocabSize
        let total = o.steps + o.warmup
        Fatal.agree(comm.isCoordinator ? memoryProblem(o, model: bench, ranks: comm.size) : nil, code: Fatal.Code.outOfMemory)
        let trainer = makeTrainer(o, model: bench, comm: comm, log: log)
        let phases = PhasePeaks()   // Benchmark+Memory.swift
        trainer.onPhase = phases.mark

        // The SGEMM ceiling before and after the steps, on every rank at once (as training runs
        // them); the higher of the two counts. The machine's speed drifts over a run, and a
        // probe between steps was tried and dropped: it slowed the steps that followed it.
        let probe = SGEMMProbe(comm: comm, threads: o.threads)
        let before = probe.best(repeats: 7)
        comm.barrier()
        let baseRSS = max(probe.peakBeforeProbes, peakResidentBytes())

        var steps: [Double] = [], compute: [Double] = [], update: [Double] = []
        var sync: [Double] = [], inBackward: [Double] = [], wait: [Double] = [], afterMax: [Double] = []
        var losses: [Double] = [], cpu: [Double] = []
        for s in 0..<total {
            let t0 = comm.wallTime(), c0 = processCPUSeconds()
            let r = trainer.step(s)
            let dt = comm.wallTime() - t0
            if s >= o.warmup { cpu.append(processCPUSeconds() - c0) }
            losses.append(r.loss)
            // Every rank's timings, each in its own slot (a sum with one non-zero per slot).
            let f = 4
            var per = [Double](repeating: 0, count: f * comm.size)
            let mine = trainer.lastTimings
            per[f * comm.rank ..< f * comm.rank + f] = [mine.compute, mine.syncInBackward, mine.gradientSync, mine.update]
            comm.allreduce(&per, op: .sum)
            let column = { (k: Int) in stride(from: k, to: per.count, by: f).map { per[$0] } }
            let after = column(2)
            // The rank that left backward last waits for no one: its time after backward is
            // the allreduce's own tail; the others' extra time is waiting for it.
            let own = column(1).max()! + after.min()!, waited = after.max()! - after.min()!
            let tc = column(0).max()!, tu = column(3).max()!
            if s >= o.warmup {
                steps.append(dt); compute.append(tc); update.append(tu)
                sync.append(own); inBackward.append(column(1).max()!); wait.append(waited); afterMax.append(after.max()!)
            }
            let ranks = comm.size > 1 ? String(format: ", allreduce %.1f, waiting for the slower rank %.1f", own * 1e3, waited * 1e3) : ""
            log(String(format: "step %d/%d: %.1f ms (compute %.1f%@, update %.1f), loss %.4f%@",
                       s + 1, total, dt * 1e3, tc * 1e3, ranks, tu * 1e3, r.loss, s < o.warmup ? " (warm-up)" : ""))
            log(phases.takeStep(comm: comm))
        }
        let rss = Int(comm.allreduce(Int64(max(peakResidentBytes(), probe.peakBeforeProbes, phases.overall)), op: .max))
        let after = probe.best(repeats: 7)
        // Under --zero, rank 0's own shard: ZeRO-1 keeps the whole gradient, the summed shard in
        // it (received through a bounded staging buffer); ZeRO-2 only the shard.
        let mib = { (floats: Int) in Double(floats * 4) / 1048576 }
        let state: String
        if let zero = trainer.zero {
            let shard = zero.gradients.shardCount
            let grads = o.zero >= 2 ? String(format: "gradient shard %.0f MiB", mib(shard))
                : String(format: "gradients %.0f MiB (the summed shard inside) + staging %.0f MiB", mib(trainer.trainable.count),
                         mib(zero.gradients.stagingCount))
            state = String(format: "%@, Adam shard %.0f MiB (--zero %d, %d ranks)", grads, mib(2 * shard), o.zero, comm.size)
        } else {
            state = String(format: "gradients %.0f MiB (trainable only), Adam %.0f MiB", mib(trainer.trainable.count), mib(2 * trainer.trainable.count))
        }
        log(String(format: "memory (rank 0): peak RSS %.0f MiB before the first step; arena %.0f MiB (activation gradients %.0f MiB); parameters %.0f MiB, %@",
                   Double(baseRSS) / 1048576, Double(trainer.arena.bytes) / 1048576, Double(trainer.arena.gradientBytes) / 1048576,
                   mib(model.parameters.count), state))
        let median = Self.median(steps)
        let tokens = Double(o.batch * o.seqLen)
        let C = Double(bench.attentionWidth), L = Double(bench.layers), T = Double(o.seqLen)
        // Frozen parameters (LoRA's base) cost forward + input gradient (4 FLOPs each), no weight gradient.
        let trained = trainer.trainable.names.reduce(0) { $0 + model.parameters.entry($1)!.count }
        let flopsPerToken = 6 * Double(trained) + 4 * Double(model.parameters.parameterCount - trained) + 6 * L * T * C
        let perRankBatch = (o.batch + comm.size - 1) / comm.size
        let acts = (o.recompute ? bench.recomputedActivationFloats : bench.activationFloats)(perRankBatch, o.seqLen) * 4
        // LoRA: the values of every parameter; gradients and Adam's moments of the adapters only
        // (the frozen base's gradient range is never resident: `ZeroedPages`).
        let need = (o.loraRank > 0 ? 4 * model.parameters.count + 12 * trainer.trainable.count
                                   : stateBytes(floats: model.parameters.count, ranks: comm.size, zero: o.zero)) + acts

        let (genRate, genNote) = generationRate(model, tokens: o.generateTokens, comm: comm)
        var result = Result(ranks: comm.size, threadsPerRank: o.threads, parameters: model.parameters.parameterCount,
                      batch: o.batch, seqLen: o.seqLen, vocab: o.vocab, stepSeconds: steps, medianStep: median,
                      tokensPerSecond: tokens / median, flopsPerToken: flopsPerToken,
                      modelFlops: flopsPerToken * tokens / median, sgemmCeiling: max(before, after),
                      sgemmBefore: before, sgemmAfter: after,
                      computeSeconds: Self.median(compute), syncSeconds: Self.median(sync),
                      syncInBackwardSeconds: Self.median(inBackward), rankWaitSeconds: Self.median(wait),
                      syncAfterBackwardMax: Self.median(afterMax), updateSeconds: Self.median(update), peakRSS: rss, needBytes: need, activationBytes: acts,
                      generationTokensPerSecond: genRate, generationNote: genNote,
                      coreType: BLASKernel.coreTypeSetting, blasCore: BLAS.coreName,
                      firstLoss: losses.first ?? .nan, lastLoss: losses.last ?? .nan, zero: o.zero, recompute: o.recompute,
                      modelName: bench.name)
        result.stepCPUSeconds = cpu
        return result
    }

    /// The `Trainer` the benchmark steps: `bench`'s model (broadcast from rank 0), synthetic
    /// batches, AdamW at a constant learning rate, clipping, as `sft-dist train` runs them.
    static func makeTrainer(_ o: Options, model bench: BenchModel, comm: Communicator, log: (String) -> Void) -> Trainer {
        let model = bench.model
        var o = o; o.vocab = model.vocabSize
        let lora = (model as? LoRAAdaptable)?.lora
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
        recipe.model = bench.name; recipe.data = "synthetic"; recipe.steps = total
        recipe.batchSize = o.batch; recipe.microBatchSize = o.batch; recipe.maxLength = o.seqLen + 1
        recipe.lr = 3e-4; recipe.warmupSteps = 0; recipe.schedule = .constant; recipe.weightDecay = 0.01
        recipe.beta1 = 0.9; recipe.beta2 = 0.999; recipe.gradClip = 1.0; recipe.seed = o.seed
        recipe.overlapGradSync = o.overlapGradSync
        recipe.zero = o.zero; recipe.recompute = o.recompute
        recipe.loraRank = lora?.rank ?? 0; recipe.loraAlpha = lora?.alpha ?? 0; recipe.loraTargets = lora.map { ModuleList($0.targets.joined(separator: ",")) }
        let data = Dataset(examples: examples, report: LoadReport(path: "synthetic", maxLength: o.seqLen + 1, truncation: .right))
        let objective = Fatal.collective { try ObjectiveRegistry.make(name: "nll", args: [:]) }
        let setup = RunSetup(recipe: recipe, tokenizer: ByteTokenizer(), model: model, train: data, heldOut: data,
                             objective: objective, referenceModel: nil)
        let trainer = Trainer(setup: setup, comm: comm, source: SequentialBatches(batch: o.batch))
        trainer.clearGradientsInUpdate = true   // as sft-dist train (Trainer+GradientClearing.swift)
        if let lora { log("LoRA r=\(lora.rank), α=\(Int(lora.alpha)) on \(lora.targets.joined(separator: ", ")): \(trainer.trainable.names.count) adapter tensors, the base frozen") }
        return trainer
    }

    /// 1024×1024×1024 `cblas_sgemm` on every rank at the same time, FLOP/s summed over ranks,
    /// both with OpenBLAS's own threading at `threads` and as the model's GEMMs run (split
    /// over our pool): on this 2-core machine OpenBLAS's 2-thread GEMM is the slower of the
    /// two, and a ceiling below what the model reaches would measure nothing.
    ///
    /// The matrices (12 MiB per rank) are mapped for each measurement and unmapped after,
    /// and the peak-RSS mark is reset behind them: the probe's memory is not the step's.
    final class SGEMMProbe {
        let n = 1024, threads: Int, comm: Communicator
        /// Highest VmHWM seen before each probe reset it.
        private(set) var peakBeforeProbes = 0

        init(comm: Communicator, threads: Int) { self.comm = comm; self.threads = threads }

        /// The faster of `repeats` GEMMs in each of the two ways, as FLOP/s over all ranks.
        func best(repeats: Int) -> Double {
            peakBeforeProbes = max(peakBeforeProbes, peakResidentBytes())
            let bytes = 3 * n * n * 4
            let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            guard p != MAP_FAILED, let raw = p else { return .nan }
            defer { munmap(raw, bytes); resetPeakResident() }
            let a = raw.assumingMemoryBound(to: Float.self), b = a + n * n, c = b + n * n
            for i in 0..<(n * n) { a[i] = Float(i % 7) * 0.1; b[i] = Float(i % 5) * 0.1; c[i] = 0 }
            comm.barrier()
            var best = Double.infinity
            for _ in 0..<repeats {
                let t0 = comm.wallTime()
                BLAS.openBLASGemm(threads: threads, m: n, n: n, k: n, a: a, b: b, c: c)
                best = min(best, comm.wallTime() - t0)
            }
            for _ in 0..<repeats {
                let t0 = comm.wallTime()
                BLAS.probeGemm(n: n, a: a, b: b, c: c)
                best = min(best, comm.wallTime() - t0)
            }
            return comm.allreduce(2 * Double(n * n * n) / best, op: .sum)
        }
    }

    /// Greedy decoding of `tokens` new tokens after a 16-token prompt, batch 1, on rank 0's
    /// model (every rank runs it; the slowest rank's rate is reported).
    public static let generationPromptTokens = 16

    static func generationRate(_ model: LanguageModel, tokens: Int, comm: Communicator) -> (Double?, String) {
        guard tokens > 0 else { return (nil, "not measured") }
        let prompt = (0..<generationPromptTokens).map { Int32($0 * 37 % model.vocabSize) }
        let t0 = comm.wallTime()
        let out = Generator.generate(model, prompts: [prompt], options: SamplingOptions(maxNewTokens: tokens),
                                     rngs: [RNG(seed: 1)])
        let dt = comm.wallTime() - t0
        let rate = comm.allreduce(Double(out[0].ids.count) / dt, op: .min)
        return (rate, "batch 1, greedy, \(out[0].ids.count) tokens after a 16-token prompt")
    }

    /// Starts the peak-resident mark (VmHWM) afresh from the current resident set.
    static func resetPeakResident() {
        _ = try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
    }

    /// Peak resident set (VmHWM) of this process in bytes.
    public static func peakResidentBytes() -> Int {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return statusKilobytes(line) * 1024   // Benchmark+Shapes.swift
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
