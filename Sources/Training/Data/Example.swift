/// One tokenized training example, ready for batching.
///
/// The loss mask travels with the ids (rather than being recomputed from a template at
/// batch time) so that batching, packing, truncation and per-sample statistics all agree on
/// exactly which tokens are trained, whatever template or format produced them.
public struct Example: Sendable, Equatable {
    /// Full token sequence: prompt + completion (+ eos for prompt/completion records).
    public var ids: [Int32]
    /// Same length as `ids`; 1 where `ids[i]` is a token the model is trained to predict
    /// (completion / assistant tokens including the closing `<|im_end|>` or `<|endoftext|>`).
    /// `lossMask[0]` is never trainable: nothing precedes the first token.
    public var lossMask: [UInt8]
    /// `ids[0..<promptLength]` is the prompt a generation-based evaluation feeds the model.
    public var promptLength: Int
    /// Reference completion text for exact-match evaluation; nil for a `{"text"}` row, which
    /// has no prompt to answer.
    public var answer: String?
    /// Where it came from, `"file.jsonl:12"`, so messages can point at the line.
    public var source: String
    /// An unpaired preference row's label (KTO: `{"prompt", "completion", "label"}`): true for
    /// a desirable answer, false for an undesirable one; nil for any other row.
    public var label: Bool? = nil
    /// A preference pair's margin (TRL's `"margin"` column), on its chosen answer; 0 otherwise.
    public var margin: Float = 0
    /// A triple-preference row's gold answer (TRL's TPO `"reference"` column), kept on the
    /// chosen answer: the prompt with the gold answer, tokenized and fitted as the pair's sides
    /// are. nil for any other row.
    public var gold: GoldAnswer? = nil

    public init(ids: [Int32], lossMask: [UInt8], promptLength: Int, answer: String?, source: String) {
        precondition(ids.count == lossMask.count, "Example: ids and lossMask differ in length")
        self.ids = ids
        self.lossMask = lossMask
        self.promptLength = promptLength
        self.answer = answer
        self.source = source
    }
}

/// The third answer of a triple-preference row (TPO, arXiv 2405.16681): the prompt followed by
/// the gold answer, trained by NLL only (`ObjectiveRegistry.makeTPO`).
public struct GoldAnswer: Sendable, Equatable {
    public var ids: [Int32]
    public var lossMask: [UInt8]
    public var promptLength: Int
    /// Its text: what a held-out triple's greedy answer is matched against (`Dataset.chosenOnly`).
    public var answer: String?
    public init(_ e: Example) { ids = e.ids; lossMask = e.lossMask; promptLength = e.promptLength; answer = e.answer }
}

/// Number of positions that contribute to the loss: 1s in `lossMask[1...]`.
///
/// The first token is excluded because training predicts token i from tokens before it,
/// so a mask bit on position 0 can never be used; this is the count batching produces.
public func lossTokenCount(_ e: Example) -> Int {
    var n = 0
    for m in e.lossMask.dropFirst() where m != 0 { n += 1 }
    return n
}
