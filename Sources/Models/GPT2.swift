import Foundation
import TensorCore

/// GPT-2 (Radford et al. 2019): learned positions, pre-LayerNorm blocks, GELU-tanh MLP,
/// output projection tied to the token embedding. The structure of llm.c's train_gpt2.c,
/// with each layer a tape op (forward + hand-written backward) over flat buffers.
///
/// Parameters are named and laid out exactly as Hugging Face's GPT2LMHeadModel saves them
/// (`transformer.h.{i}.attn.c_attn.weight` as Conv1D [in, out]), so checkpoints load and
/// export with no renaming or transposes.
public struct GPT2Config: Codable, Equatable, Sendable {
    public var vocabSize: Int
    public var contextLength: Int
    public var embedDim: Int
    public var layers: Int
    public var heads: Int
    public var layerNormEps: Float = 1e-5
    /// A reward model (`GPT2ForSequenceClassification`, one label): `score.weight` in place of
    /// the tied LM head (`SequenceScoreHead`).
    public var scoreHead = false
    /// A reward model's `pad_token_id` as config.json gives it: rewards are read at a sequence's
    /// last token that is not it (nil for a causal LM, which keeps none).
    public var scorePadId: Int? = nil
    /// The dropout probabilities of the config.json it was read from (transformers' defaults,
    /// 0.1, where it gives none), written back as they were: sft-dist trains without dropout
    /// (`LanguageModel.dropoutNote`). Empty for a preset, written as 0.
    public var dropout: [String: Double] = [:]
    public static let dropoutKeys = ["resid_pdrop", "embd_pdrop", "attn_pdrop"]

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", contextLength = "n_positions", embedDim = "n_embd"
        case layers = "n_layer", heads = "n_head", layerNormEps = "layer_norm_epsilon"
    }

    public init(vocabSize: Int, contextLength: Int, embedDim: Int, layers: Int, heads: Int,
                layerNormEps: Float = 1e-5) {
        self.vocabSize = vocabSize; self.contextLength = contextLength; self.embedDim = embedDim
        self.layers = layers; self.heads = heads; self.layerNormEps = layerNormEps
    }

    /// Checks that make the forward pass well defined; the message names the field.
    public func validate() throws {
        func bad(_ m: String) -> ModelError { ModelError("model config: \(m)") }
        if vocabSize < 1 { throw bad("vocab_size must be ≥ 1, got \(vocabSize)") }
        if contextLength < 2 { throw bad("n_positions must be ≥ 2, got \(contextLength)") }
        if embedDim < 1 || heads < 1 || embedDim % heads != 0 {
            throw bad("n_embd (\(embedDim)) must be a positive multiple of n_head (\(heads))")
        }
        if layers < 1 { throw bad("n_layer must be ≥ 1, got \(layers)") }
    }

    public var parameterLayout: [(name: String, shape: [Int])] { layoutPlan.layout }

    /// The layout by parts, so its size is known (`storeFloats`) before it is built.
    public var layoutPlan: ParameterLayoutPlan {
        let C = embedDim, C3 = ParameterLayoutPlan.dimension(3, embedDim), C4 = ParameterLayoutPlan.dimension(4, embedDim)
        return ParameterLayoutPlan(
            before: [("transformer.wte.weight", [vocabSize, C]), ("transformer.wpe.weight", [contextLength, C])],
            block: { i in
                let p = "transformer.h.\(i)."
                return [(p + "ln_1.weight", [C]), (p + "ln_1.bias", [C]),
                        (p + "attn.c_attn.weight", [C, C3]), (p + "attn.c_attn.bias", [C3]),
                        (p + "attn.c_proj.weight", [C, C]), (p + "attn.c_proj.bias", [C]),
                        (p + "ln_2.weight", [C]), (p + "ln_2.bias", [C]),
                        (p + "mlp.c_fc.weight", [C, C4]), (p + "mlp.c_fc.bias", [C4]),
                        (p + "mlp.c_proj.weight", [C4, C]), (p + "mlp.c_proj.bias", [C])]
            },
            blocks: layers,
            after: [("transformer.ln_f.weight", [C]), ("transformer.ln_f.bias", [C])]
                + (scoreHead ? [(SequenceScoreHead.weightName, [1, C])] : []))
    }
}

public struct ModelError: Error, CustomStringConvertible {
    public let description: String
    /// The model needs more memory than there is (exit code 5, not 1: the same input works on
    /// a larger machine).
    public let isOutOfMemory: Bool
    public init(_ d: String, outOfMemory: Bool = false) { description = d; isOutOfMemory = outOfMemory }
}

public final class GPT2: LanguageModel, HiddenStateModel, LoRAAdaptable, NoisyEmbeddings {
    public let config: GPT2Config
    public let parameters: ParameterStore
    public static let loraArchitecture = LoRAArchitecture.gpt2
    public let lora: LoRAConfig?
    public var generationConfig: GenerationConfig?
    public var loraDropout: LoRADropoutContext?
    public var embeddingNoise: NEFTuneNoise?
    public private(set) lazy var blockRanges: [Range<Int>] = (0..<config.layers).map { parameters.range(prefix: "transformer.h.\($0).") }
    /// `--recompute`: where re-run blocks keep their activations (nil: blocks are not re-run).
    public var recomputeArena: Arena?

    /// `lora` (resolved: `LoRAConfig.resolved`) adds adapter tensors to the layout.
    public init(config: GPT2Config, lora: LoRAConfig? = nil) {
        self.config = config
        self.lora = lora
        parameters = ParameterStore(layout: config.layoutPlan.addingLoRA(lora, Self.loraArchitecture).layout)
    }

    /// GPT-2's initialisation: N(0, 0.02) for weights, residual projections scaled by
    /// 1/√(2·layers), zero biases, unit LayerNorm gains.
    public convenience init(config: GPT2Config, seed: UInt64, lora: LoRAConfig? = nil) {
        self.init(config: config, lora: lora)
        var rng = RNG(seed: seed, stream: 1)
        let residualStd = 0.02 / Float(2 * config.layers).squareRoot()
        for e in parameters.entries {
            let t = parameters[e.name]
            if e.name.hasSuffix(".bias") || LoRAConfig.isAdapterName(e.name) { continue }
            if e.name.contains("ln_") {
                for i in 0..<t.count { t.data[i] = 1 }
                continue
            }
            let std: Float = e.name.hasSuffix("c_proj.weight") ? residualStd : 0.02
            for i in 0..<t.count { t.data[i] = rng.normal() * std }
        }
    }

    public var vocabSize: Int { config.vocabSize }
    public var maxSequenceLength: Int { config.contextLength }
    public func makeReplica() -> LanguageModel {
        let m = GPT2(config: config, lora: lora)
        m.generationConfig = generationConfig
        return m
    }

    public var configJSON: [String: Any] {
        var j: [String: Any] = ["model_type": "gpt2", "architectures": [config.scoreHead ? SequenceScoreHead.architecture(for: "GPT2LMHeadModel") : "GPT2LMHeadModel"],
         "vocab_size": config.vocabSize, "n_positions": config.contextLength,
         "n_ctx": config.contextLength, "n_embd": config.embedDim, "n_layer": config.layers,
         "n_head": config.heads, "layer_norm_epsilon": config.layerNormEps.shortestDecimal,
         "activation_function": "gelu_new", "tie_word_embeddings": true,
         "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0]
        j.merge(config.dropout) { $1 }
        if config.scoreHead { j.merge(SequenceScoreHead.labelFields) { $1 }; j["pad_token_id"] = config.scorePadId }
        return j
    }

    public func forward(_ tape: Tape, inputs: [Int32], positions: [Int32], segments: [Int32]?,
                        batch B: Int, seqLen T: Int) -> Tensor {
        let (xf, head, layout) = forwardHidden(tape, inputs: inputs, positions: positions, segments: segments, batch: B, seqLen: T)
        // Tied output projection: logits [B·T, V] = xf · wteᵀ
        return tape.linear(xf, weight: head, layout: layout)
    }

    public func forwardHidden(_ tape: Tape, inputs: [Int32], positions: [Int32], segments: [Int32]?,
                              batch B: Int, seqLen T: Int) -> (hidden: Tensor, head: Tensor, layout: WeightLayout) {
        precondition(inputs.count == B * T && positions.count == B * T, "GPT2.forward: \(inputs.count) ids for B=\(B) T=\(T)")
        let p = parameters, eps = config.layerNormEps, H = config.heads
        // x: [B·T, C] = wte[ids] + wpe[pos]
        var x = tape.embedding(inputs, table: p["transformer.wte.weight"], plus: positions, table: p["transformer.wpe.weight"])
        x = noisedEmbeddings(tape, x)   // NEFTune in training (added to wte[ids] in transformers; the sum is the same)
        for i in 0..<config.layers {
            let l = "transformer.h.\(i)."
            tape.markParametersReady(blockRanges[i])   // block i's gradients are final past here
            let block = { (tape: Tape, x: Tensor) -> Tensor in
            let h1 = tape.layerNorm(x, weight: p[l + "ln_1.weight"], bias: p[l + "ln_1.bias"], eps: eps)
            let qkv = self.project(tape, l + "attn.c_attn", h1, bias: p[l + "attn.c_attn.bias"])  // [B·T, 3C]
            let att = tape.causalSelfAttention(qkv: qkv, batch: B, seqLen: T, heads: H, segments: segments)  // [B·T, C]
            let x = self.project(tape, l + "attn.c_proj", att, bias: p[l + "attn.c_proj.bias"], residual: x)
            let h2 = tape.layerNorm(x, weight: p[l + "ln_2.weight"], bias: p[l + "ln_2.bias"], eps: eps)
            let fc = tape.gelu(self.project(tape, l + "mlp.c_fc", h2, bias: p[l + "mlp.c_fc.bias"]))  // [B·T, 4C]
            return self.project(tape, l + "mlp.c_proj", fc, bias: p[l + "mlp.c_proj.bias"], residual: x)
            }
            x = runBlock(tape, x, prefix: l, block)   // --recompute: BlockRecompute.swift
        }
        let xf = tape.layerNorm(x, weight: p["transformer.ln_f.weight"], bias: p["transformer.ln_f.bias"], eps: eps)
        return (xf, p[config.scoreHead ? SequenceScoreHead.weightName : "transformer.wte.weight"], .outIn)
    }
}
