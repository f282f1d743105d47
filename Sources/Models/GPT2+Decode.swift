#if canImport(Glibc)
import Glibc
#endif
import TensorCore

/// GPT-2 incremental decoding with a KV cache: the same layers as `GPT2.forward`, run as
/// inference kernels (no tape) on only the new tokens, with keys and values of earlier
/// positions read from the cache. Checked against full recomputation in GPT2DecodeTests.
extension GPT2: IncrementalDecoder {
    public func makeCache(rows: Int, capacity: Int) -> KVCache {
        KVCache(layers: config.layers, rows: rows, capacity: min(capacity, config.contextLength), kvDim: config.embedDim, kvHeads: config.heads)
    }

    public func decode(_ segments: [DecodeSegment], cache: KVCache, logitsOf which: DecodeLogits) -> UnsafeBufferPointer<Float> {
        let C = config.embedDim, V = config.vocabSize, H = config.heads, eps = config.layerNormEps
        let N = segments.reduce(0) { $0 + $1.tokens.count }
        guard N > 0 else { return UnsafeBufferPointer(start: nil, count: 0) }
        let (ids, positions) = cache.newTokens(segments, model: "GPT2")
        let R = DecodeRows.logitRows(segments, total: N, which)
        let p = parameters
        let b = cache.workspace.carve([N * C, N * C, N * 3 * C, N * C, N * 4 * C, R * V, N, N,
                                       CachedAttention.scratchFloats(segments, cache: cache), DecodeHead.scratchFloats(rows: R, dim: C)])
        let (x, h, qkv, att, fc, logits, mean, rstd, scores) = (b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8])
        // x = wte[ids] + wpe[positions]
        EmbeddingKernels.forward(out: x, ids: ids, table: p["transformer.wte.weight"].data, rows: V, dim: C)
        EmbeddingKernels.forward(out: h, ids: positions, table: p["transformer.wpe.weight"].data, rows: config.contextLength, dim: C)
        Vec.add(x, h, count: N * C)
        for l in 0..<config.layers {
            let w = { (name: String) in p["transformer.h.\(l).\(name)"].data }
            LayerNormKernels.forward(out: h, mean: mean, rstd: rstd, x: x, weight: w("ln_1.weight"),
                                     bias: w("ln_1.bias"), rows: N, dim: C, eps: eps)
            decodeLinear(out: qkv, x: h, w: w("attn.c_attn.weight"), bias: w("attn.c_attn.bias"),
                                  n: N, inFeatures: C, outFeatures: 3 * C)
            addAdapterTerm("transformer.h.\(l).attn.c_attn", out: qkv, x: h, n: N)
            CachedAttention.appendAndAttend(segments, cache: cache, layer: l, q: qkv, ldq: 3 * C, k: qkv + C, v: qkv + 2 * C,
                                            ldkv: 3 * C, out: att, ldo: C, heads: H, kvHeads: H, headDim: C / H, scratch: scores)
            decodeLinear(out: h, x: att, w: w("attn.c_proj.weight"), bias: w("attn.c_proj.bias"),
                                  n: N, inFeatures: C, outFeatures: C)
            addAdapterTerm("transformer.h.\(l).attn.c_proj", out: h, x: att, n: N)
            Vec.add(x, h, count: N * C)
            LayerNormKernels.forward(out: h, mean: mean, rstd: rstd, x: x, weight: w("ln_2.weight"),
                                     bias: w("ln_2.bias"), rows: N, dim: C, eps: eps)
            decodeLinear(out: fc, x: h, w: w("mlp.c_fc.weight"), bias: w("mlp.c_fc.bias"),
                                  n: N, inFeatures: C, outFeatures: 4 * C)
            addAdapterTerm("transformer.h.\(l).mlp.c_fc", out: fc, x: h, n: N)
            GELUKernels.forward(out: fc, x: fc, count: N * 4 * C)
            decodeLinear(out: h, x: fc, w: w("mlp.c_proj.weight"), bias: w("mlp.c_proj.bias"),
                                  n: N, inFeatures: 4 * C, outFeatures: C)
            addAdapterTerm("transformer.h.\(l).mlp.c_proj", out: h, x: fc, n: N)
            Vec.add(x, h, count: N * C)
        }
        for s in segments { cache.length[s.row] += s.tokens.count }
        let rows: UnsafePointer<Float>
        if which == .lastPosition { DecodeRows.gatherLast(segments, from: x, dim: C, into: att); rows = UnsafePointer(att) } else { rows = UnsafePointer(x) }
        LayerNormKernels.forward(out: h, mean: mean, rstd: rstd, x: rows, weight: p["transformer.ln_f.weight"].data,
                                 bias: p["transformer.ln_f.bias"].data, rows: R, dim: C, eps: eps)
        DecodeHead.logits(out: logits, x: h, head: p["transformer.wte.weight"].data, rows: R, dim: C, vocab: V, scratch: b[9])
        return UnsafeBufferPointer(start: logits, count: R * V)
    }

    /// x·W + b for the layers' [in, out] weights: `DecodeGEMM` (no weight packing, the same
    /// sums) for the few rows of a decode step, OpenBLAS for a prefill's many rows and for the
    /// products it would run on its small-matrix kernel.
    func decodeLinear(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                      bias: UnsafePointer<Float>, n: Int, inFeatures ic: Int, outFeatures oc: Int) {
        guard n <= 64, DecodeGEMM.sameSumsAsBLAS(m: n, n: oc, k: ic) else {
            LinearKernels.forward(out: out, x: x, w: w, bias: bias, n: n, inFeatures: ic, outFeatures: oc, layout: .inOut)
            return
        }
        DecodeGEMM.forward(m: n, n: oc, k: ic, a: x, lda: ic, b: w, ldb: oc, c: out, ldc: oc)
        for r in 0..<n { Vec.add(out + r * oc, bias, count: oc) }
    }
}
