import TensorCore

/// Llama-family incremental decoding with a KV cache, following `GPT2+Decode.swift`: the layers of
/// `Llama.forward` as inference kernels (no tape) over only the new tokens. Keys are cached
/// *after* rotary, at their absolute positions, as HF's `DynamicCache` stores them, so a cached
/// key never needs re-rotating; grouped-query attention reads kv head h / (heads / kvHeads).
/// Checked against full recomputation in LlamaDecodeTests.
extension Llama: IncrementalDecoder {
    public func makeCache(rows: Int, capacity: Int) -> KVCache {
        KVCache(layers: config.layers, rows: rows, capacity: min(capacity, config.contextLength),
                kvDim: config.kvHeads * config.headDim)
    }

    public func decode(_ segments: [DecodeSegment], cache: KVCache) -> [Float] {
        let c = config, C = c.hiddenSize, V = c.vocabSize, hd = c.headDim
        let qDim = c.heads * hd, kvDim = c.kvHeads * hd, I = c.intermediateSize
        let N = segments.reduce(0) { $0 + $1.tokens.count }
        guard N > 0 else { return [] }
        let (ids, positions) = cache.newTokens(segments, model: "Llama")
        let (cosT, sinT) = RotaryKernels.tables(maxPosition: Int(positions.max()!), headDim: hd, theta: c.ropeTheta)
        let p = parameters
        func w(_ name: String) -> UnsafeMutablePointer<Float> { p[name].data }
        func b(_ name: String) -> UnsafeMutablePointer<Float>? { p.entry(name) == nil ? nil : p[name].data }
        func linear(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ name: String, _ ic: Int, _ oc: Int) {
            LinearKernels.forward(out: out, x: x, w: w(name + ".weight"), bias: b(name + ".bias"),
                                  n: N, inFeatures: ic, outFeatures: oc, layout: .outIn)
            addAdapterTerm(name, out: out, x: x, n: N)
        }
        let buf = LlamaDecodeBuffers(n: N, c: C, q: qDim, kv: kvDim, i: I, v: V)
        EmbeddingKernels.forward(out: buf.x, ids: ids, table: w("model.embed_tokens.weight"), rows: V, dim: C)
        for l in 0..<c.layers {
            let pre = "model.layers.\(l)."
            RMSNormKernels.forward(out: buf.h, rstd: buf.rstd, x: buf.x, weight: w(pre + "input_layernorm.weight"),
                                   rows: N, dim: C, eps: c.rmsNormEps)
            linear(buf.q, buf.h, pre + "self_attn.q_proj", C, qDim)
            linear(buf.k, buf.h, pre + "self_attn.k_proj", C, kvDim)
            linear(buf.v, buf.h, pre + "self_attn.v_proj", C, kvDim)
            // In place: each pair is read before it is written.
            RotaryKernels.rotate(out: buf.q, x: buf.q, positions: positions, heads: c.heads, headDim: hd,
                                 cos: cosT, sin: sinT, direction: 1, accumulate: false)
            RotaryKernels.rotate(out: buf.k, x: buf.k, positions: positions, heads: c.kvHeads, headDim: hd,
                                 cos: cosT, sin: sinT, direction: 1, accumulate: false)
            var offset = 0
            for s in segments {
                let start = cache.length[s.row]
                for i in 0..<s.tokens.count {
                    cache.key(l, row: s.row, position: start + i).update(from: buf.k + (offset + i) * kvDim, count: kvDim)
                    cache.value(l, row: s.row, position: start + i).update(from: buf.v + (offset + i) * kvDim, count: kvDim)
                }
                CachedAttention.forward(out: buf.att + offset * qDim, ldo: qDim, q: buf.q + offset * qDim, ldq: qDim,
                                        cache: cache, layer: l, row: s.row, start: start, count: s.tokens.count,
                                        heads: c.heads, kvHeads: c.kvHeads, headDim: hd)
                offset += s.tokens.count
            }
            linear(buf.h, buf.att, pre + "self_attn.o_proj", qDim, C)
            Vec.add(buf.x, buf.h, count: N * C)
            RMSNormKernels.forward(out: buf.h, rstd: buf.rstd, x: buf.x, weight: w(pre + "post_attention_layernorm.weight"),
                                   rows: N, dim: C, eps: c.rmsNormEps)
            linear(buf.gate, buf.h, pre + "mlp.gate_proj", C, I)
            linear(buf.up, buf.h, pre + "mlp.up_proj", C, I)
            SwiGLUKernels.forward(out: buf.gate, gate: buf.gate, up: buf.up, count: N * I)
            LinearKernels.forward(out: buf.h, x: buf.gate, w: w(pre + "mlp.down_proj.weight"), bias: b(pre + "mlp.down_proj.bias"),
                                  n: N, inFeatures: I, outFeatures: C, layout: .outIn)
            addAdapterTerm(pre + "mlp.down_proj", out: buf.h, x: buf.gate, n: N)
            Vec.add(buf.x, buf.h, count: N * C)
        }
        for s in segments { cache.length[s.row] += s.tokens.count }
        RMSNormKernels.forward(out: buf.h, rstd: buf.rstd, x: buf.x, weight: w("model.norm.weight"), rows: N, dim: C, eps: c.rmsNormEps)
        let head = c.tieWordEmbeddings ? w("model.embed_tokens.weight") : w("lm_head.weight")
        LinearKernels.forward(out: buf.logits, x: buf.h, w: head, bias: nil, n: N, inFeatures: C, outFeatures: V, layout: .outIn)
        return Array(UnsafeBufferPointer(start: buf.logits, count: N * V))
    }
}

/// Scratch for one Llama decode call; freed when it returns.
final class LlamaDecodeBuffers {
    let x, h, q, k, v, att, gate, up, logits, rstd: UnsafeMutablePointer<Float>
    init(n: Int, c: Int, q qDim: Int, kv: Int, i: Int, v vocab: Int) {
        func make(_ count: Int) -> UnsafeMutablePointer<Float> {
            CheckedAllocation.floats(count, for: "decoding activations")
        }
        x = make(n * c); h = make(n * c); q = make(n * qDim); k = make(n * kv); v = make(n * kv); att = make(n * qDim)
        gate = make(n * i); up = make(n * i); logits = make(n * vocab); rstd = make(n)
    }
    deinit { [x, h, q, k, v, att, gate, up, logits, rstd].forEach { CheckedAllocation.free($0) } }
}
