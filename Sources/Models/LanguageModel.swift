import TensorCore

/// What the trainer needs from a model family: its parameters (flat, named by the
/// checkpoint's keys), a forward pass from token ids to logits, and its Hugging Face style
/// config for saving. GPT-2 is the first family; the Llama family implements the same.
public protocol LanguageModel: AnyObject {
    var parameters: ParameterStore { get }
    var vocabSize: Int { get }
    var maxSequenceLength: Int { get }
    /// The `config.json` this model is saved with (Hugging Face keys).
    var configJSON: [String: Any] { get }
    /// The keys of `configJSON` that shape the computation (the ones the model interprets, not
    /// the file's other keys it only writes back: `_name_or_path`, `use_cache`, …): what every
    /// rank must agree on (`SameInputs`).
    var architectureJSON: [String: Any] { get }
    /// The `generation_config.json` the model was loaded with, written back when it is saved
    /// (nil: none — presets, sft-dist's own models).
    var generationConfig: GenerationConfig? { get set }
    /// Fresh model of the same architecture (for reference / old-policy copies).
    func makeReplica() -> LanguageModel
    /// Flat parameter range of each transformer block, first block first: forward marks
    /// block i's range on the tape, and the gradient buckets are these ranges in reverse
    /// (the order backward finishes them), so the two can never disagree.
    var blockRanges: [Range<Int>] { get }

    /// inputs, positions: [B·T]; segments (packing): [B·T] or nil. Returns logits [B·T, V].
    func forward(_ tape: Tape, inputs: [Int32], positions: [Int32], segments: [Int32]?,
                 batch: Int, seqLen: Int) -> Tensor
}

extension LanguageModel {
    public var architectureJSON: [String: Any] { configJSON }

    /// Copies every parameter value from `other` (same architecture).
    public func copyParameters(from other: LanguageModel) {
        precondition(other.parameters.count == parameters.count, "copyParameters: layouts differ")
        parameters.values.update(from: other.parameters.values, count: parameters.count)
    }

    /// Forward with default positions 0..<T per row and no packing.
    public func forward(_ tape: Tape, inputs: [Int32], batch: Int, seqLen: Int) -> Tensor {
        var pos = [Int32](repeating: 0, count: batch * seqLen)
        for b in 0..<batch { for t in 0..<seqLen { pos[b * seqLen + t] = Int32(t) } }
        return forward(tape, inputs: inputs, positions: pos, segments: nil, batch: batch, seqLen: seqLen)
    }
}

extension LanguageModel {
    /// `blockRanges` in the order backward finishes them (last block first): the gradient
    /// buckets that can be reduced while backward is still running.
    public var blockParameterRanges: [Range<Int>] { blockRanges.reversed() }
}

extension LanguageModel {
    /// What sets the model's context when it is not the position limit (nil: that limit), for
    /// messages about lengths: a Llama-family sliding window below max_position_embeddings.
    public var contextReason: String? {
        guard let llama = self as? Llama, let w = llama.config.slidingWindow, w < llama.config.maxPositions else { return nil }
        return "its sliding_window, beyond which sft-dist does not compute attention as transformers does; max_position_embeddings \(llama.config.maxPositions)"
    }

    /// The dropout its config.json asks for and sft-dist does not apply ("resid_pdrop 0.1, …"),
    /// or nil: training here is TRL's with dropout off, so its losses differ from TRL's in
    /// train mode by dropout's noise. The saved config keeps the values.
    public var dropoutNote: String? {
        let d = (self as? GPT2)?.config.dropout ?? (self as? Llama)?.config.dropout ?? [:]
        let set = d.filter { $0.value > 0 }.sorted { $0.key < $1.key }
        guard !set.isEmpty else { return nil }
        return "config.json sets " + set.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            + ", and sft-dist trains without dropout (transformers and TRL apply it in training): losses are TRL's with dropout off; the saved config keeps the values"
    }

    /// "64", or "8 (its sliding_window, …)".
    public var contextDescription: String { "\(maxSequenceLength)" + (contextReason.map { " (\($0))" } ?? "") }
}
