import Distributed
import Foundation
import Models
import TensorCore

/// `sft-dist bench --lora-rank r --against-full`: LoRA's step time ÷ full fine-tuning's on the
/// same model, measured as adjacent pairs of steps inside one process.
///
/// Two separate runs do not measure this ratio well on a shared or virtual machine: the
/// machine's speed drifts by several per cent over minutes (the same binary's LoRA step
/// moved 5.07 → 5.63 s between runs while steps within a run agreed to ≈ 1 %), more than
/// the gap to issue 15's 0.7× target. Here both trainers live in one process — the LoRA model
/// and a full fine-tuning copy of the same base, the same synthetic batches — and their steps
/// alternate, in the order L F F L L F …, so each ratio compares two steps taken seconds
/// apart and neither side always runs first (after the other's cache footprint). Both models
/// are resident, so peak RSS is not reported; the single-model runs measure memory.
extension Benchmark {
    public struct PairResult: Sendable {
        public var model: String
        public var rank: Int
        public var threadsPerRank: Int, ranks: Int
        public var loraSteps: [Double], fullSteps: [Double]   // timed steps, rank 0 wall clock
        /// LoRA step ÷ full step of each adjacent pair.
        public var ratios: [Double]
        public var coreType: String, blasCore: String
        public var loraLosses: (Double, Double), fullLosses: (Double, Double)

        public var medianRatio: Double { Benchmark.median(ratios) }

        public var table: String {
            func row(_ k: String, _ v: String) -> String { k.padding(toLength: 34, withPad: " ", startingAt: 0) + v }
            let list = { (v: [Double]) in v.map { String(format: "%.3f", $0) }.joined(separator: " ") }
            let threads = "\(ranks) rank\(ranks == 1 ? "" : "s") × \(threadsPerRank) thread\(threadsPerRank == 1 ? "" : "s")"
            return [
                "sft-dist bench: LoRA r=\(rank) against full fine-tuning on \(model), steps alternating in one process",
                row("layout", threads),
                row("OPENBLAS_CORETYPE", BLASKernel.reportRow(coreType: coreType, blasCore: blasCore)),
                row("LoRA step (median of \(loraSteps.count))", String(format: "%.3f s", Benchmark.median(loraSteps)) + "  (\(list(loraSteps)))"),
                row("full step (median of \(fullSteps.count))", String(format: "%.3f s", Benchmark.median(fullSteps)) + "  (\(list(fullSteps)))"),
                row("LoRA ÷ full, per pair", String(format: "median %.3f", medianRatio) + "  (\(list(ratios)))"),
                row("loss LoRA / full", String(format: "%.4f → %.4f / %.4f → %.4f", loraLosses.0, loraLosses.1, fullLosses.0, fullLosses.1)),
            ].joined(separator: "\n")
        }

        public var json: String {
            let num = { (x: Double) in x.isFinite ? String(format: "%.6g", x) : "null" }
            let list = { (v: [Double]) in "[" + v.map(num).joined(separator: ",") + "]" }
            let f: [(String, String)] = [
                ("bench", JSONText.quote("lora_against_full")), ("model", JSONText.quote(model)), ("lora_rank", "\(rank)"),
                ("ranks", "\(ranks)"), ("threads_per_rank", "\(threadsPerRank)"),
                ("lora_step_s", list(loraSteps)), ("full_step_s", list(fullSteps)),
                ("lora_median_step_s", num(Benchmark.median(loraSteps))), ("full_median_step_s", num(Benchmark.median(fullSteps))),
                ("lora_over_full", list(ratios)), ("lora_over_full_median", num(medianRatio)),
                ("lora_first_loss", num(loraLosses.0)), ("lora_last_loss", num(loraLosses.1)),
                ("full_first_loss", num(fullLosses.0)), ("full_last_loss", num(fullLosses.1)),
                ("openblas_coretype", JSONText.quote(coreType)), ("openblas_core", JSONText.quote(blasCore)),
            ]
            return "{" + f.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}"
        }
    }

    /// `lora` and `full` are the same architecture and base weights, `lora` with adapters.
    /// `o.loraRank` is LoRA's rank; `o.warmup` untimed pairs, then `o.steps` timed ones.
    public static func loraAgainstFull(_ o: Options, lora: BenchModel, full: BenchModel, comm: Communicator,
                                       log: (String) -> Void) -> PairResult {
        BLAS.threads = o.threads
        let loraTrainer = makeTrainer(o, model: lora, comm: comm, log: log)
        let fullTrainer = makeTrainer(o, model: full, comm: comm, log: log)
        var loraSteps: [Double] = [], fullSteps: [Double] = [], ratios: [Double] = []
        var loraLoss: [Double] = [], fullLoss: [Double] = []
        for s in 0..<(o.warmup + o.steps) {
            var dl = 0.0, df = 0.0
            for loraTurn in (s % 2 == 0 ? [true, false] : [false, true]) {
                comm.barrier()
                let t0 = comm.wallTime()
                let r = (loraTurn ? loraTrainer : fullTrainer).step(s)
                let dt = comm.wallTime() - t0
                if loraTurn { dl = dt; loraLoss.append(r.loss) } else { df = dt; fullLoss.append(r.loss) }
            }
            let timed = s >= o.warmup
            if timed { loraSteps.append(dl); fullSteps.append(df); ratios.append(dl / df) }
            log(String(format: "pair %d/%d: LoRA %.1f ms, full %.1f ms, LoRA ÷ full %.3f%@",
                       s + 1, o.warmup + o.steps, dl * 1e3, df * 1e3, dl / df, timed ? "" : " (warm-up)"))
        }
        return PairResult(model: lora.name, rank: o.loraRank, threadsPerRank: o.threads, ranks: comm.size,
                          loraSteps: loraSteps, fullSteps: fullSteps, ratios: ratios,
                          coreType: BLASKernel.coreTypeSetting, blasCore: BLAS.coreName,
                          loraLosses: (loraLoss.first ?? .nan, loraLoss.last ?? .nan),
                          fullLosses: (fullLoss.first ?? .nan, fullLoss.last ?? .nan))
    }
}
