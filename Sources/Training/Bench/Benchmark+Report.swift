import Foundation
import Models
import TensorCore

/// What `sft-dist bench` measured, as a table or one JSON line.
///
/// The gradient allreduce is split the way the time is really spent at more than one rank:
/// its own cost (time inside MPI during backward on the rank that spent most there, plus the
/// time after backward on the rank that finished backward last — that rank waits for no one,
/// only for the sums to complete) and, separately, how long the faster rank waited for the
/// slower one to finish its backward (load imbalance: the same work, different speed).
/// `grad_sync_after_backward_max_s` keeps the plain maximum over ranks of the time after
/// backward, which contains both.
extension Benchmark {
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
        public var sgemmCeiling: Double        // FLOP/s, all ranks: the higher of `sgemmBefore`, `sgemmAfter`
        public var sgemmBefore: Double         // FLOP/s, all ranks: best 1024³ sgemm before the steps
        public var sgemmAfter: Double          // FLOP/s, all ranks: the same, after the steps
        public var computeSeconds: Double      // median over steps of the slowest rank
        public var syncSeconds: Double         // median per step: the allreduce's own cost (see above)
        public var syncInBackwardSeconds: Double  // median per step: inside MPI during backward (max over ranks)
        public var rankWaitSeconds: Double     // median per step: faster rank waiting for the slower one
        public var syncAfterBackwardMax: Double   // median per step: max over ranks of the time after backward
        public var updateSeconds: Double
        public var peakRSS: Int                // bytes, max over ranks
        public var needBytes: Int              // params + grads + Adam m, v + activations, per rank
        public var activationBytes: Int
        public var generationTokensPerSecond: Double?
        public var generationNote: String
        public var coreType: String
        public var blasCore: String
        public var firstLoss: Double, lastLoss: Double
        public var zero = 0, recompute = false   // --zero, --recompute (Benchmark+Memory.swift)
        public var modelName = "gpt2-mini"       // --shape / --model (Benchmark+Shapes.swift)
        /// Rank 0's process CPU time of each timed step (Benchmark+CPUTime.swift): on a shared
        /// machine it measures the work where wall time measures the other jobs too.
        public var stepCPUSeconds: [Double] = []
        public var medianStepCPU: Double? { stepCPUSeconds.isEmpty ? nil : Benchmark.median(stepCPUSeconds) }
        /// Rank 0's share of a step's tokens, which its CPU time is spent on (rows are dealt
        /// round-robin, so rank 0 has ⌈batch/R⌉): tokens per CPU second is per rank (under
        /// mpirun the whole batch over rank 0's time was R× too high).
        var rankTokens: Double { Double((batch + max(ranks, 1) - 1) / max(ranks, 1) * seqLen) }

        public var ceilingRatio: Double { modelFlops / sgemmCeiling }
        public var syncFraction: Double { syncSeconds / medianStep }
        public var rankWaitFraction: Double { rankWaitSeconds / medianStep }
        public var rssRatio: Double { Double(peakRSS) / Double(needBytes) }

        public var json: String {
            var f: [(String, String)] = [
                ("ranks", "\(ranks)"), ("threads_per_rank", "\(threadsPerRank)"), ("parameters", "\(parameters)"),
                ("batch", "\(batch)"), ("seq_len", "\(seqLen)"), ("vocab", "\(vocab)"),
                ("median_step_s", num(medianStep)), ("step_s", "[" + stepSeconds.map(num).joined(separator: ",") + "]"),
                ("tokens_per_s", num(tokensPerSecond)), ("flops_per_token", num(flopsPerToken)),
                ("model_flops", num(modelFlops)), ("sgemm_ceiling_flops", num(sgemmCeiling)),
                ("ceiling_ratio", num(ceilingRatio)), ("sgemm_before_flops", num(sgemmBefore)),
                ("sgemm_after_flops", num(sgemmAfter)), ("compute_s", num(computeSeconds)),
                ("grad_sync_s", num(syncSeconds)), ("grad_sync_fraction", num(syncFraction)),
                ("grad_sync_in_backward_s", num(syncInBackwardSeconds)),
                ("rank_wait_s", num(rankWaitSeconds)), ("rank_wait_fraction", num(rankWaitFraction)),
                ("grad_sync_after_backward_max_s", num(syncAfterBackwardMax)),
                ("update_s", num(updateSeconds)), ("peak_rss_bytes", "\(peakRSS)"), ("need_bytes", "\(needBytes)"),
                ("activation_bytes", "\(activationBytes)"), ("rss_ratio", num(rssRatio)),
                ("generation_tokens_per_s", generationTokensPerSecond.map(num) ?? "null"),
                ("generation", JSONText.quote(generationNote)),
                ("openblas_coretype", JSONText.quote(coreType)), ("openblas_core", JSONText.quote(blasCore)),
                ("openblas_replaced_core", BLASKernel.replacedCore.map(JSONText.quote) ?? "null"),
                ("first_loss", num(firstLoss)), ("last_loss", num(lastLoss)),
                ("zero", "\(zero)"), ("recompute", "\(recompute)"),
                ("model", JSONText.quote(modelName)),
            ]
            if !stepSeconds.isEmpty { f.append(("steps", "\(stepSeconds.count)")) }
            if !stepCPUSeconds.isEmpty {
                let cpu = Benchmark.median(stepCPUSeconds)
                f += [("median_step_cpu_s", num(cpu)), ("step_cpu_s", "[" + stepCPUSeconds.map(num).joined(separator: ",") + "]"),
                      ("tokens_per_cpu_s", num(rankTokens / cpu))]
            }
            return "{" + f.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}"
        }

        public var table: String {
            func row(_ k: String, _ v: String) -> String { k.padding(toLength: 34, withPad: " ", startingAt: 0) + v }
            let mb = { (b: Int) in String(format: "%.0f MiB", Double(b) / 1_048_576) }
            var rows = [
                "sft-dist bench: \(modelName) (\(String(format: "%.2f", Double(parameters) / 1e6)) M parameters, vocab \(vocab)), batch \(batch)×\(seqLen) tokens, AdamW, fp32",
                row("layout", "\(ranks) rank\(ranks == 1 ? "" : "s") × \(threadsPerRank) thread\(threadsPerRank == 1 ? "" : "s")"),
                row("OPENBLAS_CORETYPE", BLASKernel.reportRow(coreType: coreType, blasCore: blasCore)),
                row("step (median of \(stepSeconds.count))", String(format: "%.1f ms  (compute %.1f, update %.1f)",
                                                                   medianStep * 1e3, computeSeconds * 1e3, updateSeconds * 1e3)),
                row("tokens/s", String(format: "%.0f", tokensPerSecond)),
                row("model FLOP/s", String(format: "%.1f GFLOP/s  (%.1f MFLOP/token)", modelFlops / 1e9, flopsPerToken / 1e6)),
                row("SGEMM ceiling (1024³, same run)", String(format: "%.1f GFLOP/s  (best before the steps %.1f, after %.1f)",
                                                              sgemmCeiling / 1e9, sgemmBefore / 1e9, sgemmAfter / 1e9)),
                row("model FLOP/s ÷ ceiling", String(format: "%.1f %%", ceilingRatio * 100)),
            ]
            if !stepCPUSeconds.isEmpty {
                rows.insert(row("step CPU time, rank 0 (median)", String(format: "%.1f ms  (%.1f tokens per CPU second)",
                                Benchmark.median(stepCPUSeconds) * 1e3, rankTokens / Benchmark.median(stepCPUSeconds))), at: 5)
            }
            if ranks > 1 {
                rows += [
                    row("gradient allreduce / step", String(format: "%.2f %%  (%.1f ms: %.1f in backward, %.1f after)",
                                                            syncFraction * 100, syncSeconds * 1e3, syncInBackwardSeconds * 1e3,
                                                            (syncSeconds - syncInBackwardSeconds) * 1e3)),
                    row("waiting for the slower rank", String(format: "%.2f %%  (%.1f ms)", rankWaitFraction * 100, rankWaitSeconds * 1e3)),
                ]
            }
            rows += [
                row("memory options", "--zero \(zero)\(recompute ? ", --recompute" : "")"),
                row("peak RSS per rank", "\(mb(peakRSS)) vs need \(mb(needBytes)) (activations \(mb(activationBytes))) = \(String(format: "%.2f×", rssRatio))"),
                row("generation (KV cache)", generationTokensPerSecond.map { String(format: "%.0f tokens/s", $0) + " (\(generationNote))" } ?? generationNote),
                row("loss", String(format: "%.4f → %.4f", firstLoss, lastLoss)),
            ]
            return rows.joined(separator: "\n")
        }
    }
}

private func num(_ x: Double) -> String { x.isFinite ? String(format: "%.6g", x) : "null" }
