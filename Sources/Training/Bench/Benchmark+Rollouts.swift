import Distributed
import Foundation
import Models
import TensorCore

/// `sft-dist bench --rollouts`: generation as a GRPO step runs it — a batch of prompts,
/// each sampled at temperature 1 (top-p 1, no stop id, so every row runs the full length)
/// with the KV cache, sharded over ranks by `ShardedGeneration` — on the bench's randomly
/// initialised gpt2-mini (vocabulary 8192). Tokens/s counts generated tokens over the whole
/// call, prompt prefill included; the CPU time of each run (all ranks' processes, summed) is
/// reported beside it, the figure other jobs on a shared machine do not inflate; scripts/bench-peer runs transformers' `generate` on the
/// same shape.
extension Benchmark {
    public struct RolloutOptions: Sendable {
        public var prompts = 32
        public var promptLength = 16
        public var newTokens = 64
        public var runs = 6
        public var warmup = 1
        public var vocab = 8192
        public var threads: Int
        public var seed: UInt64 = 1234
        public init(threads: Int) { self.threads = threads }
    }

    public struct RolloutResult: Sendable {
        public var options: RolloutOptions
        public var ranks: Int
        public var runSeconds: [Double]     // timed runs, slowest rank's wall clock
        public var runCPUSeconds: [Double]  // timed runs, CPU time of every rank's process, summed
        public var tokensPerRun: Int

        public var medianRun: Double { Benchmark.median(runSeconds) }
        public var tokensPerSecond: Double { Double(tokensPerRun) / medianRun }
        public var medianRunCPU: Double { Benchmark.median(runCPUSeconds) }

        public var json: String {
            let o = options
            let f: [(String, String)] = [
                ("bench", JSONText.quote("rollouts")), ("ranks", "\(ranks)"), ("threads_per_rank", "\(o.threads)"),
                ("prompts", "\(o.prompts)"), ("prompt_length", "\(o.promptLength)"), ("new_tokens", "\(o.newTokens)"),
                ("vocab", "\(o.vocab)"), ("temperature", "1"), ("tokens", "\(tokensPerRun)"),
                ("median_run_s", String(format: "%.6g", medianRun)),
                ("run_s", "[" + runSeconds.map { String(format: "%.6g", $0) }.joined(separator: ",") + "]"),
                ("tokens_per_s", String(format: "%.6g", tokensPerSecond)),
                ("median_run_cpu_s", String(format: "%.6g", medianRunCPU)),
                ("run_cpu_s", "[" + runCPUSeconds.map { String(format: "%.6g", $0) }.joined(separator: ",") + "]"),
                ("tokens_per_cpu_s", String(format: "%.6g", Double(tokensPerRun) / medianRunCPU)),
            ]
            return "{" + f.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}"
        }

        public var table: String {
            let o = options
            return [
                "sft-dist bench --rollouts: gpt2-mini (vocab \(o.vocab)), \(o.prompts) prompts × \(o.promptLength) tokens, \(o.newTokens) new tokens each, T = 1, KV cache",
                "layout".padding(toLength: 34, withPad: " ", startingAt: 0)
                    + "\(ranks) rank\(ranks == 1 ? "" : "s") × \(o.threads) thread\(o.threads == 1 ? "" : "s")",
                "run (median of \(runSeconds.count))".padding(toLength: 34, withPad: " ", startingAt: 0)
                    + String(format: "%.1f ms  (all: %@)", medianRun * 1e3, runSeconds.map { String(format: "%.0f", $0 * 1e3) }.joined(separator: " ")),
                "rollout tokens/s".padding(toLength: 34, withPad: " ", startingAt: 0) + String(format: "%.0f", tokensPerSecond),
                "CPU s per run (median, all ranks)".padding(toLength: 34, withPad: " ", startingAt: 0)
                    + String(format: "%.3f  (all: %@)", medianRunCPU, runCPUSeconds.map { String(format: "%.3f", $0) }.joined(separator: " ")),
            ].joined(separator: "\n")
        }
    }

    public static func rollouts(_ o: RolloutOptions, comm: Communicator, log: (String) -> Void) -> RolloutResult {
        BLAS.threads = o.threads
        let model = GPT2(config: ModelPresets.gpt2("gpt2-mini", vocabSize: o.vocab)!, seed: o.seed)
        comm.broadcast(model.parameters.valueBuffer, root: 0)
        var rng = RNG(seed: o.seed, stream: 78)
        let prompts = (0..<o.prompts).map { _ in (0..<o.promptLength).map { _ in Int32(rng.below(o.vocab)) } }
        let options = SamplingOptions(maxNewTokens: o.newTokens, temperature: 1)
        var times: [Double] = [], cpu: [Double] = [], tokens = 0
        for run in 0..<(o.warmup + o.runs) {
            comm.barrier()
            let t0 = comm.wallTime(), c0 = processCPUSeconds()
            let gens = ShardedGeneration.generate(model, prompts: prompts, options: options, seed: UInt64(run), comm: comm)
            let dt = comm.allreduce(comm.wallTime() - t0, op: .max)
            let dc = comm.allreduce(processCPUSeconds() - c0, op: .sum)
            tokens = gens.reduce(0) { $0 + $1.ids.count }
            if run >= o.warmup { times.append(dt); cpu.append(dc) }
            log(String(format: "rollouts %d/%d: %.1f ms, %d tokens, %.0f tokens/s%@", run + 1, o.warmup + o.runs, dt * 1e3,
                       tokens, Double(tokens) / dt, run < o.warmup ? " (warm-up)" : ""))
        }
        return RolloutResult(options: o, ranks: comm.size, runSeconds: times, runCPUSeconds: cpu, tokensPerRun: tokens)
    }
}
