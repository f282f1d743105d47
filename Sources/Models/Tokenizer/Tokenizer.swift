/// What the data pipeline, the trainer and generation need from a tokenizer.
///
/// Two encoders exist because data and chat templates must never let user text smuggle in
/// control tokens: templates insert specials by id and encode the surrounding text with
/// `encodePlain`, while `encode` is for trusted strings (prompts typed on the command line,
/// template fragments) where `"<|im_end|>"` is meant as the token.
///
/// A class protocol because real tokenizers hold large tables (BPE merges, vocab) that
/// should be shared, not copied, between the dataset, the evaluator and the sampler.
public protocol Tokenizer: AnyObject {
    /// Number of rows the embedding and LM head need (largest id + 1).
    var vocabSize: Int { get }
    /// `<|endoftext|>`: ends plain prompt/completion examples and stops generation.
    var eosId: Int32 { get }
    /// Fills padded positions; never a training target.
    var padId: Int32 { get }
    /// Special-token strings inside `text` are recognised and mapped to their ids.
    func encode(_ text: String) -> [Int32]
    /// No special-token parsing: every byte of `text` is ordinary text.
    func encodePlain(_ text: String) -> [Int32]
    /// Specials decode to their strings; byte sequences that are not valid UTF-8 become U+FFFD.
    func decode(_ ids: [Int32]) -> String
    /// The id of a special token such as `"<|im_start|>"`, or nil if this vocabulary lacks it.
    func specialTokenId(_ text: String) -> Int32?
    /// Every special token string and its id.
    var specialTokens: [String: Int32] { get }
    /// See the extension below (defaults to nil).
    var bosId: Int32? { get }
    var chatTemplateText: String? { get }
    /// What a chat template's `bos_token` variable writes: the token tokenizer_config.json names
    /// as `bos_token`, whether or not encoding adds it; nil when none is named (it writes nothing).
    var templateBOS: String? { get }
    /// Makes `jinja` the chat template the tokenizer's files are saved with (a fine-tune
    /// records the one it trained with); tokenizers with no files of their own ignore it.
    func recordChatTemplate(_ jinja: String) throws
}

extension Tokenizer {
    /// The beginning-of-sequence token the tokenizer's own post-processor adds (Llama-3's
    /// `<|begin_of_text|>`), which the data pipeline and chat templates then add explicitly; nil
    /// when the family uses none (GPT-2, Qwen2, the byte tokenizer).
    public var bosId: Int32? { nil }
    /// Whether prompt `ids` hold no text: none at all, or only the BOS this tokenizer adds (a
    /// prompt "" under Llama 3), so generation and evaluation treat `""` alike under any tokenizer.
    public func holdsNoText(_ ids: ArraySlice<Int32>) -> Bool {
        ids.isEmpty || (ids.count == 1 && bosId != nil && ids.first == bosId)
    }
    /// The chat template text shipped with the tokenizer (tokenizer_config.json), if any.
    public var chatTemplateText: String? { nil }
    public var templateBOS: String? { nil }
    public func recordChatTemplate(_ jinja: String) throws {}
}
