import Foundation
import TensorCore

/// The architecture of a Llama-family checkpoint, read from Hugging Face's `config.json`
/// (`LlamaConfig`, `Qwen2Config`, `Qwen3Config`, `MistralConfig` in transformers). The four share
/// one decoder: pre-RMSNorm blocks, rotary q/k, grouped-query attention, SwiGLU MLP. They differ
/// in biases: Qwen2 always has q/k/v biases (`Qwen2Attention`: bias=True, o_proj bias=False);
/// Llama and Qwen3 have them only with `attention_bias` (then o_proj too), Llama MLP biases with
/// `mlp_bias`; Mistral has none. Qwen3 adds QK-Norm: an RMSNorm over each head of q and of k
/// before rotary (`q_norm`, `k_norm`, one [head_dim] weight each; `HeadRMSNorm.swift`).
///
/// Unsupported features are refused at load with the field named, rather than silently
/// computing something else:
/// - `rope_scaling` / `rope_parameters.rope_type` other than default (Llama-3.1 "llama3",
///   "linear", "dynamic", "yarn" change the rotary frequencies);
/// - `hidden_act` other than silu;
/// - sliding-window attention (Mistral `sliding_window`, Qwen2 `use_sliding_window` in the
///   layers `layer_types` / `max_window_layers` select) is
///   accepted by capping the usable context at the window: for sequences no longer than the
///   window, HF's sliding mask (j > i − window) keeps every causal position, so the results
///   are identical.
public struct LlamaConfig: Equatable, Sendable {
    public enum Family: String, Sendable, CaseIterable { case llama, qwen2, qwen3, mistral }

    public var family: Family
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layers: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var maxPositions: Int
    public var rmsNormEps: Float
    public var ropeTheta: Float
    public var tieWordEmbeddings: Bool
    public var qkvBias: Bool
    public var oBias: Bool
    public var mlpBias: Bool
    /// Qwen3's per-head RMSNorm of q and k (`self_attn.q_norm`, `self_attn.k_norm`).
    public var qkNorm: Bool { family == .qwen3 }
    /// Attention window (Mistral / Qwen2 / Qwen3 sliding window), nil = unlimited.
    public var slidingWindow: Int?
    /// A reward model (`LlamaForSequenceClassification`, …, one label): `score.weight` in place
    /// of the LM head, tied or not (`SequenceScoreHead`).
    public var scoreHead = false
    /// The config.json's `attention_dropout` (transformers' default 0), written back as it was:
    /// sft-dist trains without dropout (`LanguageModel.dropoutNote`).
    public var dropout: [String: Double] = [:]

    public init(family: Family, vocabSize: Int, hiddenSize: Int, intermediateSize: Int, layers: Int,
                heads: Int, kvHeads: Int, headDim: Int? = nil, maxPositions: Int, rmsNormEps: Float = 1e-6,
                ropeTheta: Float = 10_000, tieWordEmbeddings: Bool = false, qkvBias: Bool? = nil,
                oBias: Bool = false, mlpBias: Bool = false, slidingWindow: Int? = nil) {
        self.family = family; self.vocabSize = vocabSize; self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize; self.layers = layers; self.heads = heads
        self.kvHeads = kvHeads; self.headDim = headDim ?? hiddenSize / heads
        self.maxPositions = maxPositions; self.rmsNormEps = rmsNormEps; self.ropeTheta = ropeTheta
        self.tieWordEmbeddings = tieWordEmbeddings; self.qkvBias = qkvBias ?? (family == .qwen2)
        self.oBias = oBias; self.mlpBias = mlpBias; self.slidingWindow = slidingWindow
    }

    /// The longest sequence the model computes exactly as transformers does (see the type's doc).
    public var contextLength: Int { min(maxPositions, slidingWindow ?? maxPositions) }

    /// Reads and checks a config.json object; errors name the file and the field.
    public init(_ f: HFConfigFields) throws {
        let type = try f.string("model_type")
        guard let family = Family(rawValue: type) else {
            throw f.error("model_type", "\(JSONText.brief(type)) is not a Llama-family type (\(Family.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        let hidden = try f.positiveInt("hidden_size")
        let heads = try f.positiveInt("num_attention_heads")
        let kv = try f.positiveInt("num_key_value_heads", default: heads)
        if heads % kv != 0 {
            throw f.error("num_key_value_heads", "(\(kv)) must divide num_attention_heads (\(heads))")
        }
        if !f.has("head_dim") && hidden % heads != 0 {
            throw f.error("hidden_size", "(\(hidden)) must be a multiple of num_attention_heads (\(heads))")
        }
        let headDim = try f.positiveInt("head_dim", default: hidden / heads)
        if headDim % 2 != 0 { throw f.error("head_dim", "must be even for rotary embeddings, got \(headDim)") }
        let act = try f.string("hidden_act", default: "silu")
        if act != "silu" { throw f.error("hidden_act", "\(JSONText.brief(act)) is not supported (only silu)") }

        // Rotary: transformers < 4.56 writes rope_theta + rope_scaling; newer versions
        // rope_parameters {rope_type, rope_theta}. Where a file has a top-level rope_theta and
        // rope_parameters.rope_theta, the latter is used (as transformers 5 does for a file without
        // rope_scaling; one with rope_scaling is refused below unless it is the default).
        var theta = try f.double("rope_theta", default: 10_000), thetaField = "rope_theta"
        if let rp = try f.objectField("rope_parameters") {
            let sub = HFConfigFields(path: f.path, object: rp, fieldPrefix: "rope_parameters.")
            if sub.has("rope_theta") { theta = try sub.double("rope_theta"); thetaField = "rope_parameters.rope_theta" }
            let kind = try sub.string("rope_type", default: "default")
            if kind != "default" { throw f.error("rope_parameters", "rope_type \(JSONText.brief(kind)) is not supported (only default rotary)") }
        }
        if let rs = try f.objectField("rope_scaling") {
            let kind = (rs["rope_type"] ?? rs["type"]) as? String ?? "?"
            if kind != "default" { throw f.error("rope_scaling", "rope_type \(JSONText.brief(kind)) is not supported (only unscaled rotary; remove rope_scaling)") }
        }
        if theta <= 0 { throw f.error(thetaField, "must be > 0, got \(theta)") }
        // Used in float32, as transformers computes inv_freq: a theta that float32 rounds to ∞
        // was saved back as "inf" (not JSON), and one so small that the fastest frequency times
        // the last position overflows gave NaN cos/sin tables, hence a NaN loss naming nothing.
        if !Float(theta).isFinite { throw f.error(thetaField, "is \(theta), beyond float32's range (at most \(Float.greatestFiniteMagnitude))") }
        let fastest = 1 / Float(pow(Double(Float(theta)), Double(headDim - 2) / Double(headDim)))
        let lastPosition = Float(try f.positiveInt("max_position_embeddings"))
        if !Float(theta).isNormal || !(fastest * lastPosition).isFinite {
            throw f.error(thetaField, "is \(theta), too small: its rotary angles overflow float32 (transformers computes them in float32)")
        }
        if f.has("partial_rotary_factor"), try f.double("partial_rotary_factor") != 1 {
            throw f.error("partial_rotary_factor", "must be 1 (partial rotary is not supported)")
        }

        let eps = try f.double("rms_norm_eps", default: 1e-6)
        if eps <= 0 || !Float(eps).isNormal { throw f.error("rms_norm_eps", "must be > 0 and a normal float32 (≥ \(Float.leastNormalMagnitude)), got \(eps)") }

        var window: Int? = nil
        switch family {
        case .mistral:
            if f.has("sliding_window") { window = try f.positiveInt("sliding_window") }
        case .qwen2, .qwen3:
            // transformers' Qwen2 and Qwen3 slide only in the layers `layer_types` marks
            // "sliding_attention" (by default those at or past `max_window_layers`, 28): a model
            // whose layers are all full attention has no window.
            let layers = try f.positiveInt("num_hidden_layers")
            let types = try Self.layerTypes(f, layers: layers)
            if try f.bool("use_sliding_window", default: false), f.has("sliding_window") {
                let slides: Bool
                if let types {
                    slides = types.contains("sliding_attention")
                } else {
                    slides = layers > (try f.int("max_window_layers", default: 28))
                }
                if slides { window = try f.positiveInt("sliding_window") }
            }
        case .llama:
            break
        }
        // Llama and Qwen3 take attention_bias (q/k/v and o_proj); Qwen2 always has q/k/v biases.
        // The field is checked in every family, as it always was.
        let attentionBias = try f.bool("attention_bias", default: false) && (family == .llama || family == .qwen3)
        self.init(family: family, vocabSize: try f.positiveInt("vocab_size"), hiddenSize: hidden,
                  intermediateSize: try f.positiveInt("intermediate_size"),
                  layers: try f.positiveInt("num_hidden_layers"), heads: heads, kvHeads: kv, headDim: headDim,
                  maxPositions: try f.positiveInt("max_position_embeddings"), rmsNormEps: Float(eps),
                  ropeTheta: Float(theta), tieWordEmbeddings: try f.bool("tie_word_embeddings", default: false),
                  qkvBias: family == .qwen2 || attentionBias, oBias: attentionBias,
                  mlpBias: family == .llama ? try f.bool("mlp_bias", default: false) : false,
                  slidingWindow: window)
        if let w = slidingWindow, w < 2 { throw f.error("sliding_window", "must be ≥ 2, got \(w)") }
        scoreHead = try SequenceScoreHead.isScoreModel(f)
        if f.has("attention_dropout") { dropout["attention_dropout"] = try f.double("attention_dropout") }
        if contextLength < 2 { throw f.error("max_position_embeddings", "must be ≥ 2, got \(contextLength)") }
    }

    /// `layer_types`, where present, as transformers 5 validates it (`validate_layer_type`): one
    /// entry per layer, each "full_attention" or "sliding_attention" — the only kinds these
    /// families have. A misspelt or missing entry would silently turn a window on or off.
    static func layerTypes(_ f: HFConfigFields, layers: Int) throws -> [String]? {
        guard f.has("layer_types") else { return nil }
        guard let list = f.object["layer_types"] as? [Any] else { throw f.error("layer_types", "must be a list of \(layers) layer kinds (one per layer)") }
        if list.count != layers {
            throw f.error("layer_types", "has \(list.count) entries for num_hidden_layers \(layers): one per layer")
        }
        let kinds = ["full_attention", "sliding_attention"]
        for (i, entry) in list.enumerated() {
            guard let kind = entry as? String, kinds.contains(kind) else {
                let shown = (entry as? String).map(JSONText.brief) ?? "not a string"
                throw f.error("layer_types", "entry \(i) is \(shown), not one of \(kinds.joined(separator: ", "))")
            }
        }
        return list.map { $0 as! String }
    }

    /// `config.json` as transformers writes it for this family (float32 weights).
    public var json: [String: Any] {
        let arch = ["llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM",
                    "mistral": "MistralForCausalLM"][family.rawValue]!
        var j: [String: Any] = [
            "model_type": family.rawValue, "architectures": [scoreHead ? SequenceScoreHead.architecture(for: arch) : arch],
            "vocab_size": vocabSize, "hidden_size": hiddenSize, "intermediate_size": intermediateSize,
            "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kvHeads,
            "head_dim": headDim, "max_position_embeddings": maxPositions, "rms_norm_eps": rmsNormEps.shortestDecimal,
            "rope_theta": ropeTheta.shortestDecimal, "tie_word_embeddings": tieWordEmbeddings, "hidden_act": "silu",
            "torch_dtype": "float32", "attention_dropout": 0.0,
        ]
        switch family {
        case .llama: j["attention_bias"] = qkvBias; j["mlp_bias"] = mlpBias
        case .qwen2, .qwen3:
            if family == .qwen3 { j["attention_bias"] = qkvBias }
            j["use_sliding_window"] = slidingWindow != nil
            if let w = slidingWindow { j["sliding_window"] = w }
        case .mistral: j["sliding_window"] = slidingWindow.map { $0 as Any } ?? NSNull()
        }
        if scoreHead { j.merge(SequenceScoreHead.labelFields) { $1 } }
        j.merge(dropout) { $1 }
        return j
    }

    /// Hugging Face tensor names and shapes (nn.Linear weights are [out, in]).
    public var parameterLayout: [(name: String, shape: [Int])] { layoutPlan.layout }

    /// The layout by parts, so its size is known (`storeFloats`) before it is built.
    public var layoutPlan: ParameterLayoutPlan {
        let C = hiddenSize, I = intermediateSize
        let q = ParameterLayoutPlan.dimension(heads, headDim), kv = ParameterLayoutPlan.dimension(kvHeads, headDim)
        let (qkvBias, oBias, mlpBias, qkNorm, headDim) = (self.qkvBias, self.oBias, self.mlpBias, self.qkNorm, self.headDim)
        return ParameterLayoutPlan(before: [("model.embed_tokens.weight", [vocabSize, C])], block: { i in
            var l: [(String, [Int])] = []
            let p = "model.layers.\(i)."
            l.append((p + "input_layernorm.weight", [C]))
            l.append((p + "self_attn.q_proj.weight", [q, C]))
            if qkvBias { l.append((p + "self_attn.q_proj.bias", [q])) }
            l.append((p + "self_attn.k_proj.weight", [kv, C]))
            if qkvBias { l.append((p + "self_attn.k_proj.bias", [kv])) }
            l.append((p + "self_attn.v_proj.weight", [kv, C]))
            if qkvBias { l.append((p + "self_attn.v_proj.bias", [kv])) }
            l.append((p + "self_attn.o_proj.weight", [C, q]))
            if oBias { l.append((p + "self_attn.o_proj.bias", [C])) }
            if qkNorm { l += [(p + "self_attn.q_norm.weight", [headDim]), (p + "self_attn.k_norm.weight", [headDim])] }
            l.append((p + "post_attention_layernorm.weight", [C]))
            for (name, shape) in [("gate_proj", [I, C]), ("up_proj", [I, C]), ("down_proj", [C, I])] {
                l.append((p + "mlp.\(name).weight", shape))
                if mlpBias { l.append((p + "mlp.\(name).bias", [shape[0]])) }
            }
            return l
        }, blocks: layers, after: [("model.norm.weight", [C])] + (scoreHead ? [(SequenceScoreHead.weightName, [1, C])]
            : tieWordEmbeddings ? [] : [("lm_head.weight", [vocabSize, C])]))
    }
}
