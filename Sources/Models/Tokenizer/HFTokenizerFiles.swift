import Foundation

/// The tokenizer files of a Hugging Face model directory, for export.
///
/// A `BPETokenizer` writes back the files it was read from, byte for byte. The byte tokenizer has
/// no file of its own, so an equivalent `tokenizer.json` is generated: a byte-level BPE whose
/// vocabulary is the 256 byte characters with id = byte value (`ByteLevel.characters`) and no
/// merges, so every byte is its own token exactly as `ByteTokenizer` encodes it, plus the four
/// specials as added tokens with their ids. transformers loads it as `PreTrainedTokenizerFast`,
/// and sft-dist reads it back with `BPETokenizer` giving the same ids.
public enum HFTokenizerFiles {
    /// ChatML with no default system prompt: the same text `ChatTemplate.chatml` produces.
    public static let chatMLTemplate = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"

    /// File name → contents to write next to config.json.
    public static func files(for tokenizer: Tokenizer, contextLength: Int) throws -> [String: Data] {
        if let bpe = tokenizer as? BPETokenizer { return bpe.sourceFiles }
        if let byte = tokenizer as? ByteTokenizer { return try byteTokenizerFiles(contextLength: contextLength, chatTemplate: byte.chatTemplateText) }
        return [:]
    }

    static func byteTokenizerFiles(contextLength: Int, chatTemplate: String? = nil) throws -> [String: Data] {
        let byte = ByteTokenizer()
        var vocab: [String: Int] = [:]
        for b in 0..<256 { vocab[String(ByteLevel.characters[b])] = b }
        let added: [[String: Any]] = byte.specialTokens.sorted { $0.value < $1.value }.map {
            ["id": Int($0.value), "content": $0.key, "single_word": false, "lstrip": false, "rstrip": false,
             "normalized": false, "special": true]
        }
        let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]
        let tokenizer: [String: Any] = [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": added,
            "normalizer": NSNull(), "pre_tokenizer": byteLevel,
            "post_processor": ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true],
            "decoder": byteLevel,
            "model": ["type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                      "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                      "vocab": vocab, "merges": [String]()] as [String: Any],
        ]
        let config: [String: Any] = [
            "tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|endoftext|>", "pad_token": "<|pad|>",
            "model_max_length": contextLength, "chat_template": chatTemplate ?? chatMLTemplate, "clean_up_tokenization_spaces": false,
        ]
        let map: [String: Any] = ["eos_token": "<|endoftext|>", "pad_token": "<|pad|>",
                                  "additional_special_tokens": ["<|im_start|>", "<|im_end|>"]]
        let opts: JSONSerialization.WritingOptions = [.prettyPrinted, .sortedKeys]
        return ["tokenizer.json": try JSONSerialization.data(withJSONObject: tokenizer, options: opts),
                "tokenizer_config.json": try JSONSerialization.data(withJSONObject: config, options: opts),
                "special_tokens_map.json": try JSONSerialization.data(withJSONObject: map, options: opts)]
    }
}
