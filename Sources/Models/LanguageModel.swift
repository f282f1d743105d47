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
    /// Fresh model of the same architecture (for reference / old-policy copies).
    func makeReplica() -> LanguageModel

    /// inputs, positions: [B·T]; segments (packing): [B·T] or nil. Returns logits [B·T, V].
    func forward(_ tape: Tape, inputs: [Int32], positions: [Int32], segments: [Int32]?,
                 batch: Int, seqLen: Int) -> Tensor
}

extension LanguageModel {
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
    /// Flat parameter ranges of the transformer blocks (`….h.N.…` / `….layers.N.…`), in the
    /// order backward finishes them (last block first): the gradient buckets that can be
    /// reduced while backward is still running.
    public var blockParameterRanges: [Range<Int>] {
        var blocks: [Int: Range<Int>] = [:]
        for e in parameters.entries {
            let parts = e.name.split(separator: ".")
            guard let i = parts.firstIndex(where: { $0 == "h" || $0 == "layers" }), i + 1 < parts.count,
                  let n = Int(parts[i + 1]) else { continue }
            let r = e.offset..<(e.offset + e.count)
            blocks[n] = blocks[n].map { min($0.lowerBound, r.lowerBound)..<max($0.upperBound, r.upperBound) } ?? r
        }
        return blocks.keys.sorted(by: >).map { blocks[$0]! }
    }
}
