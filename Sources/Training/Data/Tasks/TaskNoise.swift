import TensorCore

/// Noise injection for noise-robustness experiments (noisy-label selection, token cleaning):
/// the row's completion is made wrong and the row marked `corrupted`, a field training never
/// reads, so the corruption can be measured (what share of the selected examples was corrupted)
/// but not learned from.
extension TaskGenerator {
    static func addNoise(to row: inout TaskRow, answer: String, arguments args: [String], size: Int?, options: TaskOptions,
                         rng: inout SplitMix64) {
        switch options.noiseKind {
        case .completion:
            let corrupt = unitInterval(&rng) < options.noise
            row.corrupted = corrupt
            if corrupt { row.completion = wrongAnswer(to: answer, of: row, arguments: args, size: size, options: options, rng: &rng) }
        case .token:
            let (text, changed) = replaceCharacters(of: answer, rate: options.noise, rng: &rng)
            row.completion = text
            row.corrupted = changed > 0
            row.corruptedTokens = changed
        }
    }

    /// The answer to another prompt of the same kind, size and rule, redrawn until it differs
    /// from `answer`; if a hundred draws all agree (a tiny answer space), every character is
    /// changed instead, which is certainly wrong. `repeat` keeps the row's count: another
    /// count gave an answer of another length, which marked 98 of 200 corrupted rows.
    private static func wrongAnswer(to answer: String, of row: TaskRow, arguments args: [String], size: Int?, options: TaskOptions,
                                    rng: inout SplitMix64) -> String {
        for _ in 0..<100 {
            var drawn = arguments(of: row.kind, size: size, rng: &rng)
            if row.kind == "repeat" { drawn[1] = args[1] }
            let other = prompt(kind: row.kind, arguments: drawn, options: options)
            if let otherAnswer = expectedCompletion(forPrompt: other), otherAnswer != answer { return otherAnswer }
        }
        return replaceCharacters(of: answer, rate: 1, rng: &rng).text
    }

    /// Each character after the completion's leading space is replaced, with probability
    /// `rate`, by a different one of its class (digit, lower-case, upper-case letter), so the
    /// answer keeps its shape. Returns the text and how many characters changed.
    static func replaceCharacters(of answer: String, rate: Double, rng: inout SplitMix64) -> (text: String, changed: Int) {
        let classes: [[UInt8]] = [Array(48...57), Array(97...122), Array(65...90)]
        var bytes = Array(answer.utf8)
        var changed = 0
        for i in bytes.indices.dropFirst() {
            guard let alphabet = classes.first(where: { $0.contains(bytes[i]) }) else { continue }
            guard unitInterval(&rng) < rate else { continue }
            let index = alphabet.firstIndex(of: bytes[i])!
            bytes[i] = alphabet[(index + 1 + rng.below(alphabet.count - 1)) % alphabet.count]
            changed += 1
        }
        return (String(decoding: bytes, as: UTF8.self), changed)
    }

    /// Uniform in [0, 1) from the top 53 bits.
    static func unitInterval(_ rng: inout SplitMix64) -> Double {
        Double(rng.next() >> 11) * 0x1p-53
    }
}
