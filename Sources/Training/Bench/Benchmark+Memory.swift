import Models

/// What `sft-dist bench` counts as needed memory per rank under `--zero` and `--recompute`
/// (fp32; ZeRO figures from Rajbhandari et al., arXiv 1910.02054, sec. 5).
extension Benchmark {
    /// Parameters, gradients and AdamW's m and v for `floats` parameters on each of `ranks`:
    /// 16 bytes per float unsharded; ZeRO-1 keeps the full gradient plus the summed gradient
    /// shard it receives and the moment shards (8N + 12N/R); ZeRO-2 gives the full gradient
    /// back after each bucket's reduce-scatter (4N + 12N/R).
    static func stateBytes(floats n: Int, ranks r: Int, zero: Int) -> Int {
        switch zero {
        case 0: return 16 * n
        case 1: return 8 * n + 12 * n / r
        default: return 4 * n + 12 * n / r
        }
    }

    /// `activationFloats` with every block re-run in backward: each block's output kept
    /// (C per token and layer; block i's input is block i − 1's output), one block's own
    /// activations at a time, and the final residual stream and LN_f output.
    static func recomputedActivationFloats(_ c: GPT2Config, _ batch: Int, _ seqLen: Int) -> Int {
        let C = c.embedDim, H = c.heads, N = batch * seqLen
        return c.layers * N * C + N * (16 * C + H * seqLen + 4) + N * (2 * C + 2)
    }
}
