/// What batching needs of a sequence: its tokens and loss mask, and optionally per-token
/// fields that travel with them (`StepSequence`'s behaviour log-probs and token weights).
public protocol TokenSequence {
    var ids: [Int32] { get }
    var lossMask: [UInt8] { get }
    var behaviourLogProbs: [Float] { get }
    var tokenWeights: [Float] { get }
    var referenceLogProbs: [Float] { get }
}

extension Example: TokenSequence {
    public var behaviourLogProbs: [Float] { [] }
    public var tokenWeights: [Float] { [] }
    public var referenceLogProbs: [Float] { [] }
}
extension StepSequence: TokenSequence {}

/// One forward/backward pass worth of tokens, laid out as B rows of T positions.
///
/// Each example contributes `ids.count - 1` positions: input `ids[t]`, target `ids[t+1]`.
/// The shift happens per example (never across a packed boundary), so no position is ever
/// asked to predict the first token of a different document.
public struct MicroBatch: Sendable, Equatable {
    /// B, T
    public var batch: Int, seqLen: Int
    /// B*T, row-major; padding = padId.
    public var inputs: [Int32]
    /// B*T; the next token, or -1 where there is none (padding).
    public var targets: [Int32]
    /// B*T; 1 where the target is a loss token, else 0.
    public var mask: [Float]
    /// B*T; position ids, restarting at 0 for each packed document (0 on padding).
    public var positions: [Int32]
    /// B*T; document number within the row (0, 1, 2…), -1 on padding. Attention must not
    /// cross segments.
    public var segments: [Int32]
    /// Index (into the sequences batched) of the sequence in each row (padded mode); in
    /// packed mode, of the row's first document, or -1 for an empty row.
    public var exampleOfRow: [Int]
    /// Indices (into the sequences batched) of the documents in each row, in segment order:
    /// `rowExamples[b][s]` is the example behind segment `s` of row `b`. This is how
    /// per-sample losses are attributed back to examples when packing.
    public var rowExamples: [[Int]]
    /// Sum of `mask`: the micro-batch's share of the loss normaliser.
    public var lossTokens: Int
    /// B*T, shifted like `targets`: the behaviour policy's log-prob of the target, and the
    /// target's loss weight. Empty unless some sequence of the batch carries them (then 0 and
    /// 1 where a sequence does not).
    public var behaviourLogProbs: [Float] = []
    public var tokenWeights: [Float] = []
    /// B*T, shifted like `targets`: the reference's precomputed log-prob of the target
    /// (`StepSequence.referenceLogProbs`), or empty.
    public var referenceLogProbs: [Float] = []

    /// An all-padding batch of the given shape, filled in by the builders.
    init(batch: Int, seqLen: Int, padId: Int32) {
        let n = batch * seqLen
        self.batch = batch
        self.seqLen = seqLen
        inputs = [Int32](repeating: padId, count: n)
        targets = [Int32](repeating: -1, count: n)
        mask = [Float](repeating: 0, count: n)
        positions = [Int32](repeating: 0, count: n)
        segments = [Int32](repeating: -1, count: n)
        exampleOfRow = [Int](repeating: -1, count: batch)
        rowExamples = [[Int]](repeating: [], count: batch)
        lossTokens = 0
    }

    /// Writes one example's shifted tokens into row `row` starting at column `start`.
    mutating func place<S: TokenSequence>(_ example: S, index: Int, row: Int, start: Int) {
        let segment = Int32(rowExamples[row].count)
        let base = row * seqLen + start
        for t in 0..<(example.ids.count - 1) {
            inputs[base + t] = example.ids[t]
            targets[base + t] = example.ids[t + 1]
            let trained = example.lossMask[t + 1] != 0
            mask[base + t] = trained ? 1 : 0
            if trained { lossTokens += 1 }
            positions[base + t] = Int32(t)
            segments[base + t] = segment
        }
        if !example.behaviourLogProbs.isEmpty {
            if behaviourLogProbs.isEmpty { behaviourLogProbs = [Float](repeating: 0, count: inputs.count) }
            for t in 0..<(example.ids.count - 1) { behaviourLogProbs[base + t] = example.behaviourLogProbs[t + 1] }
        }
        if !example.tokenWeights.isEmpty {
            if tokenWeights.isEmpty { tokenWeights = [Float](repeating: 1, count: inputs.count) }
            for t in 0..<(example.ids.count - 1) { tokenWeights[base + t] = example.tokenWeights[t + 1] }
        }
        if !example.referenceLogProbs.isEmpty {
            if referenceLogProbs.isEmpty { referenceLogProbs = [Float](repeating: 0, count: inputs.count) }
            for t in 0..<(example.ids.count - 1) { referenceLogProbs[base + t] = example.referenceLogProbs[t + 1] }
        }
        if rowExamples[row].isEmpty { exampleOfRow[row] = index }
        rowExamples[row].append(index)
    }
}

public enum Batching {
    /// One example per row; T is the longest `ids.count - 1` among them (at least 1), and
    /// shorter rows are padded on the right.
    public static func padded<S: TokenSequence>(_ examples: [S], indices: [Int], padId: Int32) -> MicroBatch {
        let longest = indices.map { examples[$0].ids.count - 1 }.max() ?? 0
        var batch = MicroBatch(batch: indices.count, seqLen: max(1, longest), padId: padId)
        for (row, index) in indices.enumerated() where examples[index].ids.count > 1 {
            batch.place(examples[index], index: index, row: row, start: 0)
        }
        return batch
    }

    /// Concatenates the examples, in the given order, into rows of `seqLen` positions,
    /// starting a new row whenever the next example does not fit in what is left (next-fit:
    /// order is kept, an example is never split). The tail of each row is padding.
    ///
    /// Truncation has already bounded every example, so one needing more than `seqLen`
    /// positions (`ids.count - 1 > seqLen`) is a caller bug and stops the program.
    public static func packed<S: TokenSequence>(_ examples: [S], indices: [Int], seqLen: Int, padId: Int32) -> MicroBatch {
        precondition(seqLen > 0, "Batching.packed: seqLen must be positive")
        var rows: [[Int]] = []
        var used = seqLen  // forces a first row
        for index in indices {
            let length = examples[index].ids.count - 1
            precondition(length <= seqLen,
                         "Batching.packed: sequence \(index) needs \(length) positions > seqLen \(seqLen); truncate first")
            if length <= 0 { continue }
            if used + length > seqLen {
                rows.append([])
                used = 0
            }
            rows[rows.count - 1].append(index)
            used += length
        }
        var batch = MicroBatch(batch: rows.count, seqLen: seqLen, padId: padId)
        for (row, members) in rows.enumerated() {
            var start = 0
            for index in members {
                batch.place(examples[index], index: index, row: row, start: start)
                start += examples[index].ids.count - 1
            }
        }
        return batch
    }
}
