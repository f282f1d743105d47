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
    /// Each training row's mismatched pair (nil: none), under kto's kl_pairing=fixed; nil otherwise.
    let fixed: [StepSequence?]?
    public init(source: BatchSource, mismatched: Bool, maxLength: Int, fixedPairsOf examples: [Example]? = nil) {
        self.source = source; self.mismatched = mismatched; self.maxLength = maxLength
        fixed = mismatched ? examples.map { UnpairedProducer.fixedMismatched($0, maxLength: maxLength) } : nil
    }

    public func prepare(_ p: StepPreparation) -> StepBatch {
        p.decide { UnpairedProducer.batch(step: p.step, rows: source.batch(step: p.step), examples: p.examples,
                                          mismatched: mismatched, fixed: fixed, maxLength: maxLength) }
    }

    /// Each row's mismatched pair in `examples` read in file order (nil where every row shares its
    /// prompt): what a batch of all the rows in order pairs.
    static func fixedMismatched(_ examples: [Example], maxLength: Int) -> [StepSequence?] {
        var pairs = [StepSequence?](repeating: nil, count: examples.count)
        for s in batch(step: 0, rows: Array(examples.indices), examples: examples, mismatched: true, maxLength: maxLength).sequences
        where s.origin == .mismatched { pairs[s.example] = s }
        return pairs
    }

    /// Rows `rows` of `examples` in that order, then (with `mismatched`) their mismatched pairs:
    /// the rows' `fixed` ones where given, else rotated within `rows`.
    static func batch(step: Int, rows: [Int], examples: [Example], mismatched: Bool, fixed: [StepSequence?]? = nil,
                      maxLength: Int) -> StepBatch {
        var sequences = rows.map { i -> StepSequence in
            var s = StepSequence(demonstration: examples[i], index: i)
            precondition(examples[i].label != nil, "UnpairedProducer: row \(examples[i].source) has no label")
            s.pairRole = examples[i].label == true ? .chosen : .rejected
            return s
        }
        if mismatched, let fixed {
            sequences += rows.compactMap { fixed[$0] }
        } else if mismatched {
            // Each row's prompt: its tokens before its answer (`Dataset.context(of:)`).
            let n = rows.count, prompts = rows.map { Dataset.context(of: examples[$0]) }
            sequences += rows.indices.compactMap { k -> StepSequence? in
                guard let back = (1..<max(n, 1)).first(where: { prompts[(k + n - $0) % n] != prompts[k] }) else { return nil }
                let j = (k + n - back) % n, other = examples[rows[j]], start = prompts[j].count
                let ids = Array((prompts[k] + other.ids[start...]).prefix(maxLength))
                let mask = Array(([UInt8](repeating: 0, count: prompts[k].count) + other.lossMask[start...]).prefix(maxLength))
                return StepSequence(example: rows[k], origin: .mismatched, ids: ids, lossMask: mask,
                                    promptLength: min(prompts[k].count, ids.count))
            }
        }
        return StepBatch(step: step, sequences: sequences)
    }

    public var state: [UInt64] { source.state }
    public func restore(_ state: [UInt64]) throws { try source.restore(state) }
}
