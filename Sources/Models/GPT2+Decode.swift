import TensorCore

/// GPT-2 incremental decoding with a KV cache: the same layers as `GPT2.forward`, run as
/// inference kernels (no tape) on only the new tokens, with keys and values of earlier
/// positions read from the cache. Checked against full recomputation in GPT2DecodeTests.
extension GPT2: IncrementalDecoder {
    public func makeCache(rows: Int, capacity: Int) -> KVCache {
        KVCache(layers: config.layers, rows: rows, capacity: min(capacity, config.contextLength), kvDim: config.embedDim)
    }

    public func decode(_ segments: [DecodeSegment], cache: KVCache) -> [Float] {
        let C = config.embedDim, V = config.vocabSize, H = config.heads, eps = config.layerNormEps
        let N = segments.reduce(0) { $0 + $1.tokens.count }
        guard N > 0 else { return [] }
        let (ids, positions) = cache.newTokens(segments, model: "GPT2")
        let p = parameters
        let buf = DecodeBuffers(n: N, c: C, v: V)
        // x = wte[ids] + wpe[positions]
        EmbeddingKernels.forward(out: buf.x, ids: ids, table: p["transformer.wte.weight"].data, rows: V, dim: C)
        EmbeddingKernels.forward(out: buf.h, ids: positions, table: p["transformer.wpe.weight"].data, rows: config.contextLength, dim: C)
        Vec.add(buf.x, buf.h, count: N * C)
        for l in 0..<config.layers {
            let w = { (name: String) in p["transformer.h.\(l).\(name)"].data }
            LayerNormKernels.forward(out: buf.h, mean: buf.mean, rstd: buf.rstd, x: buf.x, weight: w("ln_1.weight"),
                                     bias: w("ln_1.bias"), rows: N, dim: C, eps: eps)
            LinearKernels.forward(out: buf.qkv, x: buf.h, w: w("attn.c_attn.weight"), bias: w("attn.c_attn.bias"),
                                  n: N, inFeatures: C, outFeatures: 3 * C, layout: .inOut)
            addAdapterTerm("transformer.h.\(l).attn.c_attn", out: buf.qkv, x: buf.h, n: N)
            // Append each new token's k, v to its row, then attend.
            var offset = 0
            for s in segments {
                let start = cache.length[s.row]
                for i in 0..<s.tokens.count {
                    let src = buf.qkv + (offset + i) * 3 * C
                    cache.key(l, row: s.row, position: start + i).update(from: src + C, count: C)
                    cache.value(l, row: s.row, position: start + i).update(from: src + 2 * C, count: C)
                }
                CachedAttention.forward(out: buf.att + offset * C, ldo: C, q: buf.qkv + offset * 3 * C, ldq: 3 * C,
                                        cache: cache, layer: l, row: s.row, start: start, count: s.tokens.count,
                                        heads: H, kvHeads: H, headDim: C / H)
                offset += s.tokens.count
            }
            LinearKernels.forward(out: buf.h, x: buf.att, w: w("attn.c_proj.weight"), bias: w("attn.c_proj.bias"),
                                  n: N, inFeatures: C, outFeatures: C, layout: .inOut)
            addAdapterTerm("transformer.h.\(l).attn.c_proj", out: buf.h, x: buf.att, n: N)
            Vec.add(buf.x, buf.h, count: N * C)
            LayerNormKernels.forward(out: buf.h, mean: buf.mean, rstd: buf.rstd, x: buf.x, weight: w("ln_2.weight"),
                                     bias: w("ln_2.bias"), rows: N, dim: C, eps: eps)
            LinearKernels.forward(out: buf.fc, x: buf.h, w: w("mlp.c_fc.weight"), bias: w("mlp.c_fc.bias"),
                                  n: N, inFeatures: C, outFeatures: 4 * C, layout: .inOut)
            addAdapterTerm("transformer.h.\(l).mlp.c_fc", out: buf.fc, x: buf.h, n: N)
            GELUKernels.forward(out: buf.fc, x: buf.fc, count: N * 4 * C)
            LinearKernels.forward(out: buf.h, x: buf.fc, w: w("mlp.c_proj.weight"), bias: w("mlp.c_proj.bias"),
                                  n: N, inFeatures: 4 * C, outFeatures: C, layout: .inOut)
            addAdapterTerm("transformer.h.\(l).mlp.c_proj", out: buf.h, x: buf.fc, n: N)
            Vec.add(buf.x, buf.h, count: N * C)
        }
        for s in segments { cache.length[s.row] += s.tokens.count }
        LayerNormKernels.forward(out: buf.h, mean: buf.mean, rstd: buf.rstd, x: buf.x, weight: p["transformer.ln_f.weight"].data,
                                 bias: p["transformer.ln_f.bias"].data, rows: N, dim: C, eps: eps)
        LinearKernels.forward(out: buf.logits, x: buf.h, w: p["transformer.wte.weight"].data, bias: nil,
                              n: N, inFeatures: C, outFeatures: V, layout: .outIn)
        return Array(UnsafeBufferPointer(start: buf.logits, count: N * V))
    }
}

/// Scratch for one decode call; freed when it returns.
final class DecodeBuffers {
    let x, h, qkv, att, fc, logits, mean, rstd: UnsafeMutablePointer<Float>
    init(n: Int, c: Int, v: Int) {
        func make(_ k: Int) -> UnsafeMutablePointer<Float> {
            CheckedAllocation.floats(k, for: "decoding activations")
        }
        x = make(n * c); h = make(n * c); qkv = make(n * 3 * c); att = make(n * c); fc = make(n * 4 * c)
        logits = make(n * v); mean = make(n); rstd = make(n)
    }
    deinit { [x, h, qkv, att, fc, logits, mean, rstd].forEach { CheckedAllocation.free($0) } }
}
