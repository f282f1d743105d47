import Models

/// What to do with an example longer than the model's context.
public enum Truncation: String, Sendable, CaseIterable {
    /// Cut from the start of the prompt: the completion survives, early context is lost.
    case left
    /// Cut the end: the prompt survives, the completion's tail is lost.
    case right
    /// Drop the example (counted in the load report).
    case drop
}

/// What loading did to the data, so the CLI can say it in one line.
public struct LoadReport: Sendable, Equatable {
    public var path: String
    public var maxLength: Int
    public var truncation: Truncation
    /// Records parsed from the file (before truncation/drops).
    public var records: Int = 0
    /// What `records` counts: examples, or preference pairs (`Dataset(pairsAt:)`).
    public var unit = "examples"
    public var skippedLines: [SkippedLine] = []
    /// Examples shortened by `.left` or `.right`.
    public var truncated: Int = 0
    /// Examples removed by `.drop` for being longer than `maxLength`.
    public var droppedTooLong: Int = 0
    /// Examples removed because no trainable token was left (see `lossTokenCount`).
    public var droppedNoLossTokens: Int = 0
    /// Records with `messages` (laid out by the chat template), of `records`; TRL's
    /// conversational prompt/completion rows count here and in `promptCompletionRows`, as both
    /// loss-scope switches act on them.
    public var conversations: Int = 0
    /// `{"text"}` rows read (before fitting), for the same reason.
    public var textRows: Int = 0
    /// `{prompt, completion}` rows read (pairs of them, for preference data).
    public var promptCompletionRows: Int = 0
    /// Of `conversations` and `promptCompletionRows`, the rows that are only a prompt
    /// (`DataRecord.isPromptOnly`: grpo's prompt-only data).
    public var promptOnlyRows: Int = 0
    /// Tokens of the longest example (a pair's longer side) before it was fitted to `maxLength`.
    public var longest: Int = 0
    /// Of `truncated`, those left with no loss token (and so also in `droppedNoLossTokens`).
    public var cutToNothing: Int = 0
    /// Preference pairs whose chosen and rejected sequences were the same once cut (the
    /// difference lay past `maxLength`): DPO's loss is log 2 on them, with no gradient.
    public var droppedIdenticalPairs: Int = 0
    /// Preference pairs (or triples) whose sequences, cut from the left (`--truncation left`),
    /// kept different amounts of their prompt: each answer would be scored in another context.
    public var droppedSplitPrompts: Int = 0

    public init(path: String, maxLength: Int, truncation: Truncation) {
        self.path = path
        self.maxLength = maxLength
        self.truncation = truncation
    }

    /// Whether any record was cut or left out: `score`, `eval` and `select` say so (a dropped
    /// row is missing from their output, and `index` counts the rows kept).
    public var changedAnything: Bool { truncated + droppedTooLong + droppedNoLossTokens + droppedIdenticalPairs + droppedSplitPrompts > 0 || !skippedLines.isEmpty }

    /// A note for the log when examples were longer than `maxLength` (nil when none were): how
    /// many, the longest, and what keeps them whole — `max_length`'s default, 64 tokens, fits the
    /// built-in tasks, and real data cut there trains on a fraction of each answer. `setting` is
    /// the recipe's max_length (`isDefault`: not set by the user), `context` the model's.
    public func lengthNote(setting: Int, isDefault: Bool, context: Int) -> String? {
        let over = truncated + droppedTooLong
        guard over > 0 else { return nil }
        let what = truncation == .drop ? "were left out"
            : "were cut (\(truncation.rawValue))" + (cutToNothing > 0 ? ", \(cutToNothing) of them to no trained token and so left out" : "")
                + (droppedIdenticalPairs > 0 ? ", \(droppedIdenticalPairs) of them to a chosen and rejected that are the same, and so left out" : "")
                + (droppedSplitPrompts > 0 ? ", \(droppedSplitPrompts) of them to sides that kept different parts of their prompt, and so left out" : "")
        let limit = setting < context
            ? "max_length \(setting)" + (isDefault ? " (the default, sized for the built-in tasks)" : "")
            : "the model's context of \(context) tokens"
        let fix = setting >= context ? ""
            : longest <= context ? ": --max-length \(longest) keeps them whole"
            : ", more than the model's context: --max-length \(context) keeps the most"
        return "note: \(over) of \(records) \(unit) in \(path) are longer than \(limit) and \(what); the longest has \(longest) tokens" + fix
    }

    /// `"loaded 98 of 100 records from d.jsonl (truncated 3 to 256 tokens; dropped 2 ...)"`.
    public var summary: String {
        let kept = records - droppedTooLong - droppedNoLossTokens - droppedIdenticalPairs - droppedSplitPrompts
        var notes: [String] = []
        if promptOnlyRows > 0 { notes.append("\(promptOnlyRows == records ? "all" : "\(promptOnlyRows)") prompts only, with no completion") }
        if truncated > 0 { notes.append("truncated \(truncated) (\(truncation.rawValue)) to \(maxLength) tokens") }
        if droppedTooLong > 0 { notes.append("dropped \(droppedTooLong) longer than \(maxLength) tokens") }
        if droppedNoLossTokens > 0 { notes.append("dropped \(droppedNoLossTokens) with no loss tokens left") }
        if droppedIdenticalPairs > 0 { notes.append("dropped \(droppedIdenticalPairs) whose chosen and rejected were the same once cut") }
        if droppedSplitPrompts > 0 { notes.append("dropped \(droppedSplitPrompts) whose sides kept different parts of their prompt once cut (left)") }
        if let first = skippedLines.first {
            let noun = skippedLines.count == 1 ? "line" : "lines"
            notes.append("skipped \(skippedLines.count) bad \(noun) (first: \(first))")
        }
        let head = "loaded \(kept) of \(records) records from \(path)"
        return notes.isEmpty ? head : head + " (" + notes.joined(separator: "; ") + ")"
    }
}

/// Tokenized examples, every one at most `maxLength` tokens with at least one loss token
/// (but prompt-only rows, `Example.isPromptOnly`, which have none).
///
/// Immutable so every rank (and every thread of a rank) can share one instance; the batch
/// sampler only ever hands out indices into `examples`.
public final class Dataset: Sendable {
    public let examples: [Example]
    public let report: LoadReport

    public init(examples: [Example], report: LoadReport) {
        self.examples = examples
        self.report = report
    }

    /// Reads `path` (JSONL), tokenizes with `template`, and fits each example to `maxLength`.
    public convenience init(path: String, tokenizer: any Tokenizer, maxLength: Int,
                            truncation: Truncation = .right, template: ChatTemplate = .chatml,
                            skipBadLines: Bool = false, lossScope: LossScope = .answersOnly,
                            textField: String = JSONLReader.defaultTextField,
                            maxLineBytes: Int = JSONLReader.defaultMaxLineBytes, rows: JSONLReader.Rows = .examples,
                            leftTruncationHelps: Bool = true) throws {
        let read = try JSONLReader.read(path: path, skipBadLines: skipBadLines, maxLineBytes: maxLineBytes, rows: rows, textField: textField)
        try self.init(records: read.records, path: path, tokenizer: tokenizer, maxLength: maxLength,
                      truncation: truncation, template: template, skippedLines: read.skipped, lossScope: lossScope,
                      promptOnlyRows: rows == .examplesOrPrompts, leftTruncationHelps: leftTruncationHelps)
    }

    /// Tokenizes already-parsed records; `path` names the data in the report and errors.
    public convenience init(records: [SourcedRecord], path: String, tokenizer: any Tokenizer,
                            maxLength: Int, truncation: Truncation = .right,
                            template: ChatTemplate = .chatml, skippedLines: [SkippedLine] = [],
                            lossScope: LossScope = .answersOnly, promptOnlyRows: Bool = false,
                            leftTruncationHelps: Bool = true) throws {
        guard maxLength >= 2 else {
            throw DataError(path: path, "max length must be at least 2 tokens (got \(maxLength))")
        }
        var report = LoadReport(path: path, maxLength: maxLength, truncation: truncation)
        report.records = records.count
        report.skippedLines = skippedLines
        report.conversations = records.filter { $0.record.isConversation }.count
        report.textRows = records.filter { if case .text = $0.record { return true } else { return false } }.count
        report.promptCompletionRows = records.filter {
            switch $0.record { case .promptCompletion, .promptedConversation: return true; case .messages, .text: return false }
        }.count
        var examples: [Example] = []
        examples.reserveCapacity(records.count)
        for record in records {
            // Prompt-only rows (read with `JSONLReader.Rows.examplesOrPrompts`: grpo's data) train no token.
            let promptOnly = promptOnlyRows && record.record.isPromptOnly
            let full = promptOnly ? try ChatFormat.promptOnly(record, tokenizer: tokenizer, template: template)
                : lossScope.apply(try ChatFormat.example(from: record, tokenizer: tokenizer, template: template), record: record.record)
            if promptOnly { report.promptOnlyRows += 1 }
            report.longest = max(report.longest, full.ids.count)
            guard var fitted = Dataset.fit(full, maxLength: maxLength, truncation: truncation) else {
                report.droppedTooLong += 1
                continue
            }
            if fitted.ids.count < full.ids.count { report.truncated += 1 }
            if lossTokenCount(fitted) == 0 && !promptOnly {
                report.droppedNoLossTokens += 1
                if fitted.ids.count < full.ids.count { report.cutToNothing += 1 }
                continue
            }
            fitted.label = record.label
            examples.append(fitted)
        }
        if examples.isEmpty {
            var error = DataError(path: path, "no examples left (\(report.summary))" + (report.longest > maxLength ? "; the longest has \(report.longest) tokens" : "")
                + (truncation == .right && report.cutToNothing > 0 && leftTruncationHelps ? "; --truncation left keeps the completions (it cuts the prompts' start)"
                   : truncation == .drop && report.droppedTooLong > 0 && leftTruncationHelps ? "; --truncation left keeps them, cut from their start (the prompt first)" : ""))
            if report.longest > maxLength { error.longestUnfitted = report.longest }
            throw error
        }
        self.init(examples: examples, report: report)
    }

    /// The note that `{"text"}` rows (no answer) are scored for loss only, where an evaluation
    /// generates; nil without them. `which` qualifies the rows ("held-out ").
    public func textRowsNote(which: String = "") -> String? {
        let texts = examples.filter(\.isText)
        guard let first = texts.first else { return nil }
        return #"note: \#(texts.count) \#(which){"text"} row\#(texts.count == 1 ? "" : "s") (first: \#(first.source)): scored for loss, not generated (no prompt, no reference answer)"#
    }

    /// Fits one example into `maxLength` tokens; nil when `.drop` applies.
    /// `.left` shifts `promptLength` back by the number of tokens cut (to 0 at the least).
    public static func fit(_ example: Example, maxLength: Int, truncation: Truncation) -> Example? {
        let excess = example.ids.count - maxLength
        guard excess > 0 else { return example }
        var cut = example
        switch truncation {
        case .drop:
            return nil
        case .right:
            cut.ids = Array(example.ids.prefix(maxLength))
            cut.lossMask = Array(example.lossMask.prefix(maxLength))
            cut.promptLength = min(example.promptLength, maxLength)
        case .left:
            cut.ids = Array(example.ids.suffix(maxLength))
            cut.lossMask = Array(example.lossMask.suffix(maxLength))
            cut.promptLength = max(0, example.promptLength - excess)
        }
        return cut
    }

    public var count: Int { examples.count }
    public subscript(index: Int) -> Example { examples[index] }

    /// Sum of `lossTokenCount` over all examples.
    public var lossTokenTotal: Int { examples.reduce(0) { $0 + lossTokenCount($1) } }

    /// A held-out split that depends only on `seed` and the number of examples: the first
    /// `round(fraction × count)` entries of `seededPermutation(count:seed:)` are held out.
    /// Both halves keep the original file order, so their contents are easy to inspect.
    public func split(heldOutFraction: Double, seed: UInt64) -> (train: Dataset, heldOut: Dataset) {
        precondition(heldOutFraction >= 0 && heldOutFraction <= 1, "heldOutFraction must be in 0...1")
        let heldOutCount = min(count, Int((heldOutFraction * Double(count)).rounded()))
        var isHeldOut = [Bool](repeating: false, count: count)
        for index in seededPermutation(count: count, seed: seed).prefix(heldOutCount) {
            isHeldOut[index] = true
        }
        var train: [Example] = []
        var heldOut: [Example] = []
        for (index, example) in examples.enumerated() {
            if isHeldOut[index] { heldOut.append(example) } else { train.append(example) }
        }
        return (Dataset(examples: train, report: report), Dataset(examples: heldOut, report: report))
    }
}
