/// Labelled rows for unpaired preference objectives (KTO, arXiv 2402.01306): the coordinator's
/// `BatchSource` picks training rows, each a desirable (`pairRole` .chosen) or undesirable
/// (.rejected) answer with no partner (`pair` −1). With `mismatched`, the step batch also
/// holds, after its B rows, a sequence per row that pairs row i's prompt with row i − 1's
/// answer (row 0 with row B − 1's): the mismatched pairs from which KTO estimates the KL term
/// (§4.1; TRL's `KTOTrainer` rotates the completions by one the same way, within each
/// device's batch). Where row i − 1 has row i's prompt (a pair line's two rows, a row drawn
/// twice) the answer is the nearest earlier row's with another prompt, and a row whose prompt
/// every row shares has no mismatched pair: a prompt's own answers are no mismatch (TRL's
/// rotation can pair them too, where its batch of unpaired pairs crosses from the chosen rows
/// to the rejected ones). Rotating within the whole step batch makes the estimate the same for
/// any rank count. Those rows are cut to `maxLength` keeping their start (TRL's collator), and
/// train nothing: their origin is `.mismatched`, which the trainer gives to the objective's
/// statistics pass only.
///
/// With `fixed` (kto's `kl_pairing=fixed`) each row's mismatched pair is instead the one it has
/// in the whole training set read in file order (`fixedMismatched`: row i's prompt with row
/// i − 1's answer, by the same rule), fixed before the first step as TRL's KTOTrainer fixes
/// them when it reads the data (it rotates within consecutive blocks of
/// per_device_train_batch_size rows): the step's KL term then reads pairs known in advance,
/// which `--precompute-ref-log-probs` scores once.
public final class UnpairedProducer: StepProducer {
    public let name = "labelled rows"
    public let source: BatchSource
    public let mismatched: Bool
    public let maxLength: Int
    /// Each training row's lender — the row whose answer its mismatched pair takes (nil: none) —
    /// under kto's kl_pairing=fixed; nil otherwise.
    let fixedLenders: [Int?]?
    public init(source: BatchSource, mismatched: Bool, maxLength: Int, fixedPairsOf examples: [Example]? = nil) {
        self.source = source; self.mismatched = mismatched; self.maxLength = maxLength
        fixedLenders = mismatched ? examples.map { UnpairedProducer.lenders(Array($0.indices), examples: $0) } : nil
    }

    public func prepare(_ p: StepPreparation) -> StepBatch {
        p.decide { UnpairedProducer.batch(step: p.step, rows: source.batch(step: p.step), examples: p.examples,
                                          mismatched: mismatched, fixedLenders: fixedLenders, maxLength: maxLength) }
    }

    /// Each row's mismatched pair in `examples` read in file order (nil where every row shares its
    /// prompt): what kl_pairing=fixed pairs, and a batch of all the rows in order.
    static func fixedMismatched(_ examples: [Example], maxLength: Int) -> [StepSequence?] {
        lenders(Array(examples.indices), examples: examples).enumerated().map { row, lender in
            lender.map { pair(row: row, lender: $0, examples: examples, maxLength: maxLength) }
        }
    }

    /// Rows `rows` of `examples` in that order, then (with `mismatched`) their mismatched pairs:
    /// each row's `fixedLenders` one where given, else rotated within `rows`.
    static func batch(step: Int, rows: [Int], examples: [Example], mismatched: Bool, fixedLenders: [Int?]? = nil,
                      maxLength: Int) -> StepBatch {
        var sequences = rows.map { i -> StepSequence in
            var s = StepSequence(demonstration: examples[i], index: i)
            precondition(examples[i].label != nil, "UnpairedProducer: row \(examples[i].source) has no label")
            s.pairRole = examples[i].label == true ? .chosen : .rejected
            return s
        }
        if mismatched {
            let lent = fixedLenders.map { fixed in rows.map { fixed[$0] } } ?? lenders(rows, examples: examples)
            sequences += zip(rows, lent).compactMap { row, lender in
                lender.map { pair(row: row, lender: $0, examples: examples, maxLength: maxLength) }
            }
        }
        return StepBatch(step: step, sequences: sequences)
    }

    /// For each of `rows` (indices into `examples`), the row whose answer its mismatched pair
    /// takes: the one before it in `rows`, cyclically, or the nearest earlier one with another
    /// prompt (`Dataset.context(of:)`, its tokens before its answer); nil when all share its prompt.
    static func lenders(_ rows: [Int], examples: [Example]) -> [Int?] {
        let n = rows.count, prompts = rows.map { Dataset.context(of: examples[$0]) }
        return rows.indices.map { k in
            (1..<max(n, 1)).first(where: { prompts[(k + n - $0) % n] != prompts[k] }).map { rows[(k + n - $0) % n] }
        }
    }

    /// Row `row`'s prompt with row `lender`'s answer (as fitted), cut to `maxLength` keeping the start.
    static func pair(row: Int, lender: Int, examples: [Example], maxLength: Int) -> StepSequence {
        let prompt = Dataset.context(of: examples[row]), other = examples[lender], start = Dataset.context(of: other).count
        let ids = Array((prompt + other.ids[start...]).prefix(maxLength))
        let mask = Array(([UInt8](repeating: 0, count: prompt.count) + other.lossMask[start...]).prefix(maxLength))
        return StepSequence(example: row, origin: .mismatched, ids: ids, lossMask: mask, promptLength: min(prompt.count, ids.count))
    }

    public var state: [UInt64] { source.state }
    public func restore(_ state: [UInt64]) throws { try source.restore(state) }
}
