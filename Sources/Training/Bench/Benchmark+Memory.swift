import Distributed
import Models
import TensorCore

/// What `sft-dist bench` counts as needed memory per rank under `--zero` and `--recompute`
/// (fp32; ZeRO figures from Rajbhandari et al., arXiv 1910.02054, sec. 5).
extension Benchmark {
    /// Parameters, gradients and AdamW's m and v for `floats` parameters on each of `ranks`:
    /// 16 bytes per float unsharded; ZeRO-1 keeps the full gradient, which also holds the
    /// summed shard, and the moment shards (8N + 8N/R, plus the reduce-scatters' staging of
    /// about 2²¹/R floats, `ShardedGradients`); ZeRO-2 gives the full gradient back after each
    /// bucket's reduce-scatter and keeps the summed shard apart (4N + 12N/R).
    static func stateBytes(floats n: Int, ranks r: Int, zero: Int) -> Int {
        switch zero {
        case 0: return 16 * n
        case 1: return 8 * n + 8 * n / r + 4 * min(n, 1 << 21) / r
        default: return 4 * n + 12 * n / r
        }
    }

    /// A batch whose activations (or a model whose state) cannot fit, refused before anything
    /// is sized from it: `--batch-size 1048576` grew to 19.8 GB of a 24 GB machine before a
    /// timeout ended it. The need as the report computes it (with LoRA the base's values, the
    /// adapters' share left out), against physical memory and any address-space limit.
    static func memoryProblem(_ o: Options, model bench: BenchModel, ranks: Int,
                              available: Int? = MemoryBudget.availableBytes()) -> String? {
        guard let available else { return nil }
        let perRank = (o.batch + ranks - 1) / ranks
        let (acts, o1) = (o.recompute ? bench.recomputedActivationFloats : bench.activationFloats)(perRank, o.seqLen)
            .multipliedReportingOverflow(by: 4)
        let n = bench.model.parameters.count
        let (need, o2) = acts.addingReportingOverflow(o.loraRank > 0 ? 4 * n : stateBytes(floats: n, ranks: ranks, zero: o.zero))
        guard o1 || o2 || need > available else { return nil }
        return "out of memory: bench's step of \(perRank) sequence\(perRank == 1 ? "" : "s") × \(o.seqLen) tokens per rank on \(bench.name) needs about \(CheckedAllocation.describe(bytes: o1 || o2 ? Int.max : need)) (state and activations), more than the \(CheckedAllocation.describe(bytes: available)) available; give a smaller --batch-size or --seq-len"
    }

    /// `activationFloats` with every block re-run in backward: each block's output kept
    /// (C per token and layer; block i's input is block i − 1's output), one block's own
    /// activations at a time, and the final residual stream and LN_f output.
    static func recomputedActivationFloats(_ c: GPT2Config, _ batch: Int, _ seqLen: Int) -> Int {
        let C = c.embedDim, H = c.heads, N = batch * seqLen
        return c.layers * N * C + N * (16 * C + H * seqLen + 4) + N * (2 * C + 2)
    }

    /// Peak resident set per phase of a step (`Trainer.onPhase`): as each phase ends the
    /// high-water mark (VmHWM) is read and restarted from the current resident set, so each
    /// figure is the most that phase held at once, including what earlier phases left
    /// resident. The step's own peak is the largest of them.
    final class PhasePeaks {
        static let names = ["prepare", "forward", "backward", "gradient sync", "update"]
        private var current = [Int](repeating: 0, count: names.count)
        /// The highest mark seen over every phase of every step.
        private(set) var overall = 0

        func mark(_ phase: String) {
            guard let i = Self.names.firstIndex(of: phase) else { return }
            let peak = peakResidentBytes()
            current[i] = max(current[i], peak)
            overall = max(overall, peak)
            resetPeakResident()
        }

        /// Collective: the step's peaks, max over ranks, as one log line; starts the next step.
        func takeStep(comm: Communicator) -> String {
            var v = current.map(Double.init)
            comm.allreduce(&v, op: .max)
            current = [Int](repeating: 0, count: Self.names.count)
            let parts = zip(Self.names, v).map { String(format: "%@ %.0f", $0, $1 / 1048576) }
            return "  peak RSS by phase, MiB (max over ranks): " + parts.joined(separator: ", ")
        }
    }
}
