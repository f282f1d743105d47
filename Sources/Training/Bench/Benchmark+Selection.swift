import Distributed
import Foundation
import Models
import TensorCore

/// `sft-dist bench --selection NAME`: the cost of online selection's scoring pass on the
/// benchmark's model and shapes — the pool (`pool` × the batch of synthetic sequences)
/// scored forward-only over the ranks, gathered, and the coordinator's decision — timed
/// after one untimed pass, beside the training step's tokens/s of the same run.
extension Benchmark {
    public struct SelectionCost: Sendable {
        public var selector: String
        public var candidates: Int
        public var seconds: [Double]        // per timed pass: scoring + gather + decision
        public var decisionSeconds: Double  // the coordinator's part, median
        public var seqLen: Int
        public var cpuSeconds: [Double] = []  // this process's CPU time per timed pass

        public var median: Double { Benchmark.median(seconds) }
        public var tokensPerSecond: Double { Double(candidates * seqLen) / median }

        /// `t`: the training step's tokens/s; `batch`: sequences per training step;
        /// `stepCPU`: the training step's CPU seconds (median), for the same ratio in CPU time,
        /// which other jobs on the machine do not inflate (one rank: this process is the job).
        public func line(trainingTokensPerSecond t: Double, batch: Int, stepCPU: Double? = nil) -> String {
            let step = Double(batch * seqLen) / t
            var text = String(format: "selection %@: %d candidates scored forward-only in %.1f ms (decision %.2f ms): %.0f tokens/s = %.2fx the training step's %.0f tokens/s; the scoring pass is %.1f%% of a selecting step",
                              selector, candidates, median * 1e3, decisionSeconds * 1e3, tokensPerSecond, tokensPerSecond / t, t,
                              100 * median / (median + step))
            if let stepCPU, !cpuSeconds.isEmpty {
                let pass = Benchmark.median(cpuSeconds)
                text += String(format: "; in CPU time: pass %.2f s, training step %.2f s: %.2fx the training step's tokens per CPU-second",
                               pass, stepCPU, (Double(candidates) / pass) / (Double(batch) / stepCPU))
            }
            return text
        }

        public var json: String {
            MetricsLog.json([("selection", selector), ("selection_candidates", candidates), ("selection_pass_s", median),
                             ("selection_decision_s", decisionSeconds), ("selection_tokens_per_s", tokensPerSecond)])
        }
    }

    public static func selectionCost(_ o: Options, name: String, pool: Int, args: [String: String], repeats: Int,
                                     comm: Communicator) -> SelectionCost {
        BLAS.threads = o.threads
        let config = ModelPresets.gpt2("gpt2-mini", vocabSize: o.vocab)!
        let model = GPT2(config: config, seed: o.seed)
        comm.broadcast(model.parameters.valueBuffer, root: 0)
        var rng = RNG(seed: o.seed, stream: 78)
        let candidates = (0..<(o.batch * pool)).map { i -> StepSequence in
            let ids = (0...o.seqLen).map { _ in Int32(rng.below(o.vocab)) }
            var mask = [UInt8](repeating: 1, count: ids.count); mask[0] = 0
            return StepSequence(example: i, origin: .demonstration, ids: ids, lossMask: mask, promptLength: 1)
        }
        let context = SelectionRegistry.Context(batchSize: o.batch, pool: pool, seed: o.seed, maxLength: o.seqLen + 1,
                                                vocabSize: o.vocab, hasReference: true)
        guard let (selector, keep) = Fatal.collective({ try SelectionRegistry.make(name: name, args: args, context: context) }) else {
            return SelectionCost(selector: name, candidates: 0, seconds: [0], decisionSeconds: 0, seqLen: o.seqLen)
        }
        var seconds: [Double] = [], decisions: [Double] = [], cpu: [Double] = []
        for r in 0...max(1, repeats) {
            comm.barrier()
            let t0 = comm.wallTime(), c0 = processCPUSeconds()
            let features = selector.scorer.map { CandidateScoring.score(candidates, with: $0, model: model, comm: comm, padId: 0) }
                ?? candidates.map { _ in [] }
            // Learnability's reference pass costs another forward; the same model stands in.
            let reference = selector.referenceScorer.map { CandidateScoring.score(candidates, with: $0, model: model, comm: comm, padId: 0) } ?? []
            let p = SelectionPool(step: r, seed: o.seed, candidates: candidates, features: features, referenceFeatures: reference, keep: keep)
            let t1 = comm.wallTime()
            let decision = comm.broadcast(root: 0) { selector.select(p) }
            selector.commit(decision, pool: p)
            let t2 = comm.wallTime()
            if r > 0 { seconds.append(t2 - t0); decisions.append(t2 - t1); cpu.append(processCPUSeconds() - c0) }
        }
        return SelectionCost(selector: name, candidates: candidates.count, seconds: seconds,
                             decisionSeconds: median(decisions), seqLen: o.seqLen, cpuSeconds: cpu)
    }
}
