import Foundation

extension GPT2Config {
    /// Reads a Hugging Face GPT-2 `config.json` (transformers `GPT2Config`), refusing the options
    /// that would make `GPT2.forward` compute something other than `GPT2LMHeadModel`:
    /// an activation other than the tanh GELU (`gelu_new`, `gelu_pytorch_tanh`), an MLP width
    /// (`n_inner`) other than 4·n_embd, unscaled or layer-scaled attention, cross-attention.
    /// Errors name the file and the field.
    public init(_ f: HFConfigFields) throws {
        let act = try f.string("activation_function", default: "gelu_new")
        guard ["gelu_new", "gelu_pytorch_tanh", "gelu_fast"].contains(act) else {
            throw f.error("activation_function", "\(JSONText.brief(act)) is not supported (only the tanh GELU: gelu_new)")
        }
        let embd = try f.positiveInt("n_embd")
        if f.has("n_inner"), try f.int("n_inner") != 4 * embd {
            throw f.error("n_inner", "must be null or 4·n_embd (\(4 * embd)), got \(try f.int("n_inner"))")
        }
        if try !f.bool("scale_attn_weights", default: true) { throw f.error("scale_attn_weights", "must be true") }
        if try f.bool("scale_attn_by_inverse_layer_idx", default: false) { throw f.error("scale_attn_by_inverse_layer_idx", "must be false") }
        if try f.bool("add_cross_attention", default: false) { throw f.error("add_cross_attention", "must be false") }
        if try !f.bool("tie_word_embeddings", default: true) {
            throw f.error("tie_word_embeddings", "must be true (GPT-2's output projection is the token embedding)")
        }
        let heads = try f.positiveInt("n_head")
        if embd % heads != 0 { throw f.error("n_embd", "(\(embd)) must be a multiple of n_head (\(heads))") }
        let eps = try f.double("layer_norm_epsilon", default: 1e-5)
        if eps <= 0 || !Float(eps).isNormal { throw f.error("layer_norm_epsilon", "must be > 0 and a normal float32 (≥ \(Float.leastNormalMagnitude)), got \(eps)") }
        self.init(vocabSize: try f.positiveInt("vocab_size"), contextLength: try f.positiveInt("n_positions"),
                  embedDim: embd, layers: try f.positiveInt("n_layer"), heads: heads, layerNormEps: Float(eps))
        scoreHead = try SequenceScoreHead.isScoreModel(f)
        for key in Self.dropoutKeys { dropout[key] = try f.double(key, default: 0.1) }
        if scoreHead, f.has("pad_token_id") { scorePadId = try f.int("pad_token_id") }
        do { try validate() } catch { throw ModelError("\(f.path): \(error)") }
    }
}
