import TensorCore

/// Llama-family incremental decoding with a KV cache, following `GPT2+Decode.swift`: the layers of
/// `Llama.forward` as inference kernels (no tape) over only the new tokens. Keys are cached
/// *after* rotary, at their absolute positions, as HF's `DynamicCache` stores them, so a cached
/// key never needs re-rotating; grouped-query attention reads kv head h / (heads / kvHeads).
/// Checked against full recomputation in LlamaDecodeTests.
extension Llama: IncrementalDecoder {
    public func makeCache(rows: Int, capacity: Int) -> KVCache {
        KVCache(layers: config.layers, rows: rows, capacity: min(capacity, config.contextLength),
                kvDim: config.kvHeads * config.headDim, kvHeads: config.kvHeads)
    }

    public func decode(_ segments: [DecodeSegment], cache: KVCache, logitsOf which: DecodeLogits) -> UnsafeBufferPointer<Float> {
        let c = config, C = c.hiddenSize, V = c.vocabSize, hd = c.headDim
        let qDim = c.heads * hd, kvDim = c.kvHeads * hd, I = c.intermediateSize
        let N = segments.reduce(0) { $0 + $1.tokens.count }
        guard N > 0 else { return UnsafeBufferPointer(start: nil, count: 0) }
        let (ids, positions) = cache.newTokens(segments, model: "Llama")
        let (cosT, sinT) = RotaryTables.shared.tables(maxPosition: Int(positions.max()!), headDim: hd, theta: c.ropeTheta)
        let R = DecodeRows.logitRows(segments, total: N, which)
        let p = parameters
        func w(_ name: String) -> UnsafeMutablePointer<Float> { p[name].data }
        func b(_ name: String) -> UnsafeMutablePointer<Float>? { p.entry(name) == nil ? nil : p[name].data }
        func linear(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ name: String, _ ic: Int, _ oc: Int) {
            LinearKernels.forward(out: out, x: x, w: w(name + ".weight"), bias: b(name + ".bias"),
                                  n: N, inFeatures: ic, outFeatures: oc, layout: .outIn)
            addAdapterTerm(name, out: out, x: x, n: N)
        }
        let buf = cache.workspace.carve([N * C, N * C, N * qDim, N * kvDim, N * kvDim, N * qDim, N * I, N * I, R * V, N, R * C,
                                         CachedAttention.scratchFloats(segments, cache: cache), DecodeHead.scratchFloats(rows: R, dim: C),
                                         c.qkNorm ? N * c.heads : 0])
        let (x, h, q, k, v, att, gate, up) = (buf[0], buf[1], buf[2], buf[3], buf[4], buf[5], buf[6], buf[7])
        let (logits, rstd, lastRows, scores) = (buf[8], buf[9], buf[10], buf[11])
        EmbeddingKernels.forward(out: x, ids: ids, table: w("model.embed_tokens.weight"), rows: V, dim: C)
        for l in 0..<c.layers {
            let pre = "model.layers.\(l)."
            RMSNormKernels.forward(out: h, rstd: rstd, x: x, weight: w(pre + "input_layernorm.weight"),
                                   rows: N, dim: C, eps: c.rmsNormEps)
            linear(q, h, pre + "self_attn.q_proj", C, qDim)
            linear(k, h, pre + "self_attn.k_proj", C, kvDim)
            linear(v, h, pre + "self_attn.v_proj", C, kvDim)
            if c.qkNorm {  // Qwen3's q_norm / k_norm, in place, before rotary (HeadRMSNorm.swift)
                HeadRMSNormKernels.forward(x: q, ld: qDim, column: 0, tokens: N, heads: c.heads, headDim: hd,
                                           weight: w(pre + "self_attn.q_norm.weight"), eps: c.rmsNormEps, saved: nil, rstd: buf[13])
                HeadRMSNormKernels.forward(x: k, ld: kvDim, column: 0, tokens: N, heads: c.kvHeads, headDim: hd,
                                           weight: w(pre + "self_attn.k_norm.weight"), eps: c.rmsNormEps, saved: nil, rstd: buf[13])
            }
            // In place: each pair is read before it is written.
            RotaryKernels.rotate(out: q, x: q, positions: positions, heads: c.heads, headDim: hd,
                                 cos: cosT, sin: sinT, direction: 1, accumulate: false)
            RotaryKernels.rotate(out: k, x: k, positions: positions, heads: c.kvHeads, headDim: hd,
                                 cos: cosT, sin: sinT, direction: 1, accumulate: false)
            CachedAttention.appendAndAttend(segments, cache: cache, layer: l, q: q, ldq: qDim, k: k, v: v, ldkv: kvDim,
                                            out: att, ldo: qDim, heads: c.heads, kvHeads: c.kvHeads, headDim: hd, scratch: scores)
            linear(h, att, pre + "self_attn.o_proj", qDim, C)
            Vec.add(x, h, count: N * C)
            RMSNormKernels.forward(out: h, rstd: rstd, x: x, weight: w(pre + "post_attention_layernorm.weight"),
                                   rows: N, dim: C, eps: c.rmsNormEps)
            linear(gate, h, pre + "mlp.gate_proj", C, I)
            linear(up, h, pre + "mlp.up_proj", C, I)
            SwiGLUKernels.forward(out: gate, gate: gate, up: up, count: N * I)
            LinearKernels.forward(out: h, x: gate, w: w(pre + "mlp.down_proj.weight"), bias: b(pre + "mlp.down_proj.bias"),
                                  n: N, inFeatures: I, outFeatures: C, layout: .outIn)
            addAdapterTerm(pre + "mlp.down_proj", out: h, x: gate, n: N)
            Vec.add(x, h, count: N * C)
        }
        for s in segments { cache.length[s.row] += s.tokens.count }
        let rows: UnsafePointer<Float>
        if which == .lastPosition { DecodeRows.gatherLast(segments, from: x, dim: C, into: lastRows); rows = UnsafePointer(lastRows) } else { rows = UnsafePointer(x) }
        RMSNormKernels.forward(out: h, rstd: rstd, x: rows, weight: w("model.norm.weight"), rows: R, dim: C, eps: c.rmsNormEps)
        let head = c.tieWordEmbeddings ? w("model.embed_tokens.weight") : w("lm_head.weight")
        DecodeHead.logits(out: logits, x: h, head: head, rows: R, dim: C, vocab: V, scratch: buf[12])
        return UnsafeBufferPointer(start: logits, count: R * V)
    }
}
