/// Public model shapes for `sft-dist bench --shape`: the architectures of released Hugging Face
/// checkpoints, built with random weights (nothing is downloaded), so the benchmark measures
/// the sizes users fine-tune. The numbers are copied from each repository's `config.json`
/// (`llama-mini`, gpt2-mini's Llama twin, excepted).
extension ModelPresets {
    public static let shapeNames = ["smollm2-135m", "qwen2.5-0.5b", "qwen3-0.6b", "llama-mini"]

    public static func shape(_ name: String) -> LlamaConfig? {
        switch name {
        // HuggingFaceTB/SmolLM2-135M, config.json: LlamaForCausalLM, hidden_size 576,
        // intermediate_size 1536, num_hidden_layers 30, num_attention_heads 9,
        // num_key_value_heads 3, vocab_size 49152, max_position_embeddings 8192,
        // rope_theta 100000, rms_norm_eps 1e-5, tie_word_embeddings true, no biases
        // (134,515,008 parameters).
        case "smollm2-135m":
            return LlamaConfig(family: .llama, vocabSize: 49152, hiddenSize: 576, intermediateSize: 1536, layers: 30,
                               heads: 9, kvHeads: 3, maxPositions: 8192, rmsNormEps: 1e-5, ropeTheta: 100_000,
                               tieWordEmbeddings: true)
        // Qwen/Qwen2.5-0.5B, config.json: Qwen2ForCausalLM, hidden_size 896,
        // intermediate_size 4864, num_hidden_layers 24, num_attention_heads 14,
        // num_key_value_heads 2, vocab_size 151936, max_position_embeddings 32768,
        // rope_theta 1000000, rms_norm_eps 1e-6, tie_word_embeddings true,
        // use_sliding_window false; q/k/v biases (Qwen2Attention), no o_proj or MLP biases
        // (494,032,768 parameters).
        case "qwen2.5-0.5b":
            return LlamaConfig(family: .qwen2, vocabSize: 151_936, hiddenSize: 896, intermediateSize: 4864, layers: 24,
                               heads: 14, kvHeads: 2, maxPositions: 32768, rmsNormEps: 1e-6, ropeTheta: 1_000_000,
                               tieWordEmbeddings: true)
        // Qwen/Qwen3-0.6B, config.json: Qwen3ForCausalLM, hidden_size 1024,
        // intermediate_size 3072, num_hidden_layers 28, num_attention_heads 16,
        // num_key_value_heads 8, head_dim 128 (q is 2048 wide, twice hidden_size),
        // vocab_size 151936, max_position_embeddings 40960, rope_theta 1000000,
        // rms_norm_eps 1e-6, tie_word_embeddings true, attention_bias false,
        // use_sliding_window false; q_norm / k_norm per head (596,049,920 parameters).
        case "qwen3-0.6b":
            return LlamaConfig(family: .qwen3, vocabSize: 151_936, hiddenSize: 1024, intermediateSize: 3072, layers: 28,
                               heads: 16, kvHeads: 8, headDim: 128, maxPositions: 40960, rmsNormEps: 1e-6,
                               ropeTheta: 1_000_000, tieWordEmbeddings: true)
        // Not a released model: gpt2-mini's twin in the Llama family, to compare the two code
        // paths per FLOP on one shape (vocab 8192, width 384, 6 layers × 6 heads, 256
        // positions, tied head). SwiGLU's three [384, 1024] matrices hold as many weights as
        // GPT-2's two [384, 1536] (13.77 M parameters against gpt2-mini's 13.89 M, which adds
        // position embeddings, biases and LayerNorm shifts).
        case "llama-mini":
            return LlamaConfig(family: .llama, vocabSize: 8192, hiddenSize: 384, intermediateSize: 1024, layers: 6,
                               heads: 6, kvHeads: 6, maxPositions: 256, rmsNormEps: 1e-5, ropeTheta: 10_000,
                               tieWordEmbeddings: true)
        default: return nil
        }
    }
}
