import Distributed
import Models

/// A prompt the model answers in a self-training round: its ids up to where the answer
/// starts, the token that ends an answer in this format (`<|endoftext|>`, `<|im_end|>`, …:
/// the last trained token of the formatted example), its text for the scorer, and the gold
/// answer when the prompt is a labelled training row.
public struct SelfTrainPrompt: Sendable, Equatable {
    public var ids: [Int32]
    public var terminator: Int32
    public var text: String
    public var reference: String?
    public var source: String
    /// The training-set index of a labelled prompt; −1 for an unlabelled one.
    public var example: Int
    /// The whole formatted example up to its last trained token (prompt, gold answer, terminator):
    /// the context S3FT's paraphrase starts from.
    public var demonstration: [Int32]

    /// The prompt part of a formatted example (its answer, if any, is dropped).
    public init?(example e: Example, index: Int, tokenizer: Tokenizer, reference: String?) {
        guard e.promptLength > 0, let last = e.lossMask.lastIndex(of: 1), last >= e.promptLength else { return nil }
        ids = Array(e.ids[0..<e.promptLength])
        demonstration = Array(e.ids[0...last])
        terminator = e.ids[last]
        text = tokenizer.decode(ids)
        self.reference = reference
        source = e.source
        example = index
    }

    /// The model's answer as a training row: prompt, answer ids, terminator; loss on the answer
    /// and the terminator, as on a gold completion.
    func row(answer: [Int32]) -> PseudoRow {
        PseudoRow(ids: ids + answer + [terminator], promptLength: ids.count, example: example)
    }
}

/// A training row the model wrote itself (a pseudo-label, an accepted sample, a replaced
/// target). `example` is the labelled row it answers (−1: an unlabelled prompt).
public struct PseudoRow: Sendable, Equatable, WireCodable {
    public var ids: [Int32]
    public var promptLength: Int
    public var example: Int

    public var sequence: StepSequence {
        var mask = [UInt8](repeating: 1, count: ids.count)
        for t in 0..<min(promptLength, ids.count) { mask[t] = 0 }
        var s = StepSequence(example: example, origin: .pseudoLabel, ids: ids, lossMask: mask, promptLength: promptLength)
        s.advantage = 1
        return s
    }

    public func write(to w: inout WireWriter) { w.put(ids); w.put(Int64(promptLength)); w.put(Int64(example)) }
    public init(from r: inout WireReader) {
        ids = r.getArray(); promptLength = Int(r.get(Int64.self)); example = Int(r.get(Int64.self))
    }
    public init(ids: [Int32], promptLength: Int, example: Int) {
        self.ids = ids; self.promptLength = promptLength; self.example = example
    }
}
