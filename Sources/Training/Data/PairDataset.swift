import Models

/// Preference pairs as a `Dataset`: example 2i is pair i's chosen sequence, 2i + 1 its
/// rejected one, so the pair producer (`PairProducer`) and checkpoints' data hash see one
/// array of examples. A pair is kept or dropped whole: when truncation drops either sequence,
/// leaves either without a loss token, or keeps less of one side's prompt than the other's
/// (left truncation), the pair is dropped (counted in the report). A triple-preference row (TPO,
/// `readsGold`) keeps its gold answer on example 2i (`Example.gold`), fitted as the sides are, and
/// is dropped whole, as a pair is, by the same rules applied to its gold answer too.
extension Dataset {
    public convenience init(pairsAt path: String, tokenizer: any Tokenizer, maxLength: Int,
                            truncation: Truncation = .right, template: ChatTemplate = .chatml,
                            skipBadLines: Bool = false, readsMargins: Bool = false, readsGold: Bool = false) throws {
        let read = try PairReader.read(path: path, skipBadLines: skipBadLines, readsMargins: readsMargins, readsGold: readsGold)
        guard maxLength >= 2 else { throw DataError(path: path, "max length must be at least 2 tokens (got \(maxLength))") }
        var report = LoadReport(path: path, maxLength: maxLength, truncation: truncation)
        report.records = read.pairs.count
        report.unit = Self.pairUnit(goldAnswers: readsGold)
        report.skippedLines = read.skipped
        var examples: [Example] = []
        for (pair, line) in read.pairs {
            // Counted per pair, as `records` is: cut when either side was, dropped when either is.
            var sides: [Example] = [], drop: WritableKeyPath<LoadReport, Int>? = nil, cut = false
            if case .promptCompletion = pair.chosen { report.promptCompletionRows += 1 }
            if case .text = pair.chosen { report.textRows += 1 }
            let records = [pair.chosen, pair.rejected] + (pair.gold.map { [$0] } ?? [])
            let fulls = try records.enumerated().map { k, record -> Example in
                if k < 2, case .messages = record { report.conversations += 1 }   // the pair's, as before gold answers
                return try ChatFormat.example(from: SourcedRecord(record: record, path: path, line: line),
                                              tokenizer: tokenizer, template: template)
            }
            report.longest = max(report.longest, fulls.map(\.ids.count).max()!)
            for full in fulls {
                guard let fitted = Dataset.fit(full, maxLength: maxLength, truncation: truncation) else { drop = \.droppedTooLong; break }
                if fitted.ids.count < full.ids.count { cut = true }
                if lossTokenCount(fitted) == 0 { drop = \.droppedNoLossTokens; break }
                sides.append(fitted)
            }
            // Left truncation cuts the longer side's prompt more: its answers are then scored in
            // other contexts, which is no comparison (TRL keeps one prompt for both); dropped as
            // the pairs truncation breaks are.
            // (A reward model's pair read whole has no shared prompt to keep.)
            // A triple's gold answer likewise keeps the pair's prompt.
            if drop == nil, pair.sharesPrompt, sides.dropFirst().contains(where: { Self.context(of: $0) != Self.context(of: sides[0]) }) { drop = \.droppedSplitPrompts }
            // The difference past the cut: the same sequence twice trains nothing (loss log 2).
            if drop == nil, sides[0].ids == sides[1].ids, sides[0].lossMask == sides[1].lossMask { drop = \.droppedIdenticalPairs }
            if cut && drop != \.droppedTooLong { report.truncated += 1 }
            if cut && drop == \.droppedNoLossTokens { report.cutToNothing += 1 }
            if let drop { report[keyPath: drop] += 1; continue }
            sides[0].margin = Float(pair.margin ?? 0)
            if sides.count == 3 { sides[0].gold = GoldAnswer(sides.removeLast()) }
            examples += sides
        }
        if examples.isEmpty { throw DataError(path: path, "no \(report.unit) left (\(report.summary))") }
        self.init(examples: examples, report: report)
    }

    /// The tokens before a sequence's first loss token: its prompt, as far as it was kept.
    static func context(of e: Example) -> ArraySlice<Int32> {
        e.ids.prefix(e.lossMask.firstIndex { $0 != 0 } ?? e.ids.count)
    }

    public var pairCount: Int { examples.count / 2 }

    /// What a row of pair data is called: "triples" with gold answers (tpo), else "pairs".
    public static func pairUnit(goldAnswers: Bool) -> String { goldAnswers ? "triples" : "pairs" }

    /// Held out by pair, as `split` does by example (a seeded permutation of pair indices).
    /// Both halves keep pair i's chosen and rejected answers adjacent, as `Dataset(pairsAt:)`.
    public func splitPairs(heldOutFraction: Double, seed: UInt64) -> (train: Dataset, heldOut: Dataset) {
        let byPair = chosenOnly.split(heldOutFraction: heldOutFraction, seed: seed)
        let heldSources = Set(byPair.heldOut.examples.map(\.source))
        var train: [Example] = [], held: [Example] = []
        for i in 0..<pairCount {
            let pair = examples[(2 * i)...(2 * i + 1)]
            if heldSources.contains(examples[2 * i].source) { held += pair } else { train += pair }
        }
        return (Dataset(examples: train, report: report), Dataset(examples: held, report: report))
    }

    /// The chosen sequences only: what generation's exact match answers against — for a triple
    /// (tpo) against its gold answer, the one TPO holds right where the chosen one may not be.
    public var chosenOnly: Dataset {
        Dataset(examples: (0..<pairCount).map { i in
            var e = examples[2 * i]
            if let gold = e.gold?.answer { e.answer = gold }
            return e
        }, report: report)
    }
}
