import Foundation
import TensorCore

/// The Llama-family decoder (Touvron et al. 2023; Qwen2, Qwen3 and Mistral share it), as
/// Hugging Face's `LlamaForCausalLM` computes it (`modeling_llama.py`):
///
///     x = embed_tokens[ids]
///     per layer:  h = RMSNorm(x);  q, k, v = q/k/v_proj(h)
///                 q, k = per-head RMSNorm(q), (k)          (Qwen3 only: q_norm, k_norm)
///                 q, k = rope(q, k, positions)
///                 x = x + o_proj(causal GQA attention(q, k, v))
///                 x = x + down_proj(silu(gate_proj(RMSNorm(x))) ⊙ up_proj(·))
///     logits = lm_head(RMSNorm(x))          (lm_head = embed_tokens when tied)
///
/// Every step is a TensorCore tape op over flat parameters named by HF keys with nn.Linear's
/// [out, in] layout, so checkpoints load and export without renaming or transposing.
/// q|k|v and gate|up each run as one GEMM when their weights are adjacent in the store
/// (`projectPacked`), and the residual adds ride the o_proj / down_proj GEMMs
/// (`linear(residual:)`), as GPT-2's c_attn and c_proj do.
/// Positions restart per packed document (rotary uses the per-row positions), and attention
/// never crosses segments.
public final class Llama: LanguageModel, HiddenStateModel, LoRAAdaptable, NoisyEmbeddings {
    public let config: LlamaConfig
    public let parameters: ParameterStore
    public static let loraArchitecture = LoRAArchitecture.llama("llama")
    public let lora: LoRAConfig?
    public var generationConfig: GenerationConfig?
    public var loraDropout: LoRADropoutContext?
    public var embeddingNoise: NEFTuneNoise?
    public private(set) lazy var blockRanges: [Range<Int>] = (0..<config.layers).map { parameters.range(prefix: "model.layers.\($0).") }
    /// `--recompute`: where re-run blocks keep their activations (nil: blocks are not re-run).
    public var recomputeArena: Arena?
    /// Keys of the loaded config.json that sft-dist does not interpret (bos_token_id,
    /// eos_token_id, initializer_range…), written back on export so the saved config keeps them.
    public let extraConfig: [String: Any]
    /// q|k|v and gate|up each as one GEMM where their weights are adjacent (`projectPacked`);
    /// false projects them one by one (the tests' reference for the packed path).
    public var packsProjections = true

    /// `lora` (resolved: `LoRAConfig.resolved`) adds adapter tensors to the layout.
    public init(config: LlamaConfig, extraConfig: [String: Any] = [:], lora: LoRAConfig? = nil) {
        self.config = config
        self.extraConfig = extraConfig
        self.lora = lora
        parameters = ParameterStore(layout: config.layoutPlan.addingLoRA(lora, Self.loraArchitecture).layout)
    }

    /// N(0, 0.02) weights (HF's `initializer_range` default), zero biases, unit norms.
    public convenience init(config: LlamaConfig, seed: UInt64, lora: LoRAConfig? = nil) {
        self.init(config: config, lora: lora)
        var rng = RNG(seed: seed, stream: 1)
        for e in parameters.entries {
            let t = parameters[e.name]
            if e.name.hasSuffix(".bias") || LoRAConfig.isAdapterName(e.name) { continue }
            if e.name.hasSuffix("norm.weight") {
                for i in 0..<t.count { t.data[i] = 1 }
                continue
            }
            for i in 0..<t.count { t.data[i] = rng.normal() * 0.02 }
        }
    }

    public var vocabSize: Int { config.vocabSize }
    public var maxSequenceLength: Int { config.contextLength }
    public func makeReplica() -> LanguageModel {
        let m = Llama(config: config, extraConfig: extraConfig, lora: lora)
        m.generationConfig = generationConfig
        return m
    }

    /// (A reward model's pad_token_id too: where its rewards are read.)
    public var architectureJSON: [String: Any] {
        var j = config.json
        if config.scoreHead { j["pad_token_id"] = extraConfig["pad_token_id"] }
        return j
    }

    public var configJSON: [String: Any] {
        // Interpreted keys are regenerated; the dtype is float32 because that is what we write.
        var j = extraConfig
        for key in ["dtype", "torch_dtype", "rope_scaling", "rope_parameters", "transformers_version"] { j[key] = nil }
        for (k, v) in config.json { j[k] = v }
        return j
    }

    private func bias(_ name: String) -> Tensor? {
        parameters.entry(name) == nil ? nil : parameters[name]
    }

    public func forward(_ tape: Tape, inputs: [Int32], positions: [Int32], segments: [Int32]?,
                        batch B: Int, seqLen T: Int) -> Tensor {
        let (xf, head, layout) = forwardHidden(tape, inputs: inputs, positions: positions, segments: segments, batch: B, seqLen: T)
        return tape.linear(xf, weight: head, layout: layout)  // [B·T, V]
    }

    /// Everything up to the LM head (`HiddenStateModel`), so the trainer can fuse the head with
    /// a row-local objective and never store the [B·T, V] logits.
    public func forwardHidden(_ tape: Tape, inputs: [Int32], positions: [Int32], segments: [Int32]?,
                              batch B: Int, seqLen T: Int) -> (hidden: Tensor, head: Tensor, layout: WeightLayout) {
        precondition(inputs.count == B * T && positions.count == B * T, "Llama.forward: \(inputs.count) ids for B=\(B) T=\(T)")
        let p = parameters, c = config, eps = c.rmsNormEps
        var x = tape.embedding(inputs, table: p["model.embed_tokens.weight"])  // [B·T, C]
        x = noisedEmbeddings(tape, x)   // NEFTune in training
        for i in 0..<c.layers {
            let l = "model.layers.\(i)."
            tape.markParametersReady(blockRanges[i])   // block i's gradients are final past here
            let block = { (tape: Tape, x: Tensor) -> Tensor in
            let h = tape.rmsNorm(x, weight: p[l + "input_layernorm.weight"], eps: eps)
            func proj(_ name: String, _ input: Tensor, residual: Tensor? = nil) -> Tensor {
                self.project(tape, l + name, input, bias: self.bias(l + name + ".bias"), residual: residual)
            }
            let attn = l + "self_attn.", mlp = l + "mlp."
            let att: Tensor  // [B·T, H·hd]
            if self.packsProjections, let qkv = self.projectPacked(tape, [attn + "q_proj", attn + "k_proj", attn + "v_proj"], h) {
                if c.qkNorm {  // Qwen3: q's heads, then k's, normalised in place before rotary
                    tape.headRMSNormInPlace(qkv, column: 0, heads: c.heads, headDim: c.headDim, weight: p[attn + "q_norm.weight"], eps: eps)
                    tape.headRMSNormInPlace(qkv, column: c.heads * c.headDim, heads: c.kvHeads, headDim: c.headDim,
                                            weight: p[attn + "k_norm.weight"], eps: eps)
                }
                tape.rotaryInPlace(qkv, positions: positions, heads: c.heads + c.kvHeads, headDim: c.headDim, theta: c.ropeTheta)
                att = tape.causalSelfAttention(qkv: qkv, batch: B, seqLen: T, heads: c.heads, kvHeads: c.kvHeads,
                                               headDim: c.headDim, segments: segments)
            } else {
                func normed(_ name: String, heads: Int) -> Tensor {
                    let t = proj("self_attn.\(name)_proj", h)
                    if c.qkNorm { tape.headRMSNormInPlace(t, column: 0, heads: heads, headDim: c.headDim, weight: p[attn + name + "_norm.weight"], eps: eps) }
                    return t
                }
                let q = tape.rotary(normed("q", heads: c.heads), positions: positions, heads: c.heads,
                                    headDim: c.headDim, theta: c.ropeTheta)
                let k = tape.rotary(normed("k", heads: c.kvHeads), positions: positions, heads: c.kvHeads,
                                    headDim: c.headDim, theta: c.ropeTheta)
                att = tape.causalSelfAttention(q: q, k: k, v: proj("self_attn.v_proj", h), batch: B, seqLen: T,
                                               heads: c.heads, kvHeads: c.kvHeads, segments: segments)
            }
            let x = proj("self_attn.o_proj", att, residual: x)   // x + o_proj(att): the add rides the GEMM
            let h2 = tape.rmsNorm(x, weight: p[l + "post_attention_layernorm.weight"], eps: eps)
            let act: Tensor  // [B·T, I]
            if self.packsProjections, let gateUp = self.projectPacked(tape, [mlp + "gate_proj", mlp + "up_proj"], h2) {
                act = tape.swiglu(gateUp: gateUp)
            } else {
                act = tape.swiglu(gate: proj("mlp.gate_proj", h2), up: proj("mlp.up_proj", h2))
            }
            return proj("mlp.down_proj", act, residual: x)
            }
            x = runBlock(tape, x, prefix: l, block)   // --recompute: BlockRecompute.swift
        }
        let xf = tape.rmsNorm(x, weight: p["model.norm.weight"], eps: eps)
        let head = c.scoreHead ? p[SequenceScoreHead.weightName] : c.tieWordEmbeddings ? p["model.embed_tokens.weight"] : p["lm_head.weight"]
        return (xf, head, .outIn)
    }
}
