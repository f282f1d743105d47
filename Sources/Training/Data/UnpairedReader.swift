import Foundation
import Models

/// Reads unpaired preference rows, one JSON object per line (KTO, arXiv 2402.01306; TRL's
/// `KTOTrainer` format): `{"prompt": str, "completion": str, "label": true|false}`, or the
/// prompt as turns (`"messages"` or `"prompt": [turns]`) with the completion a string, an
/// assistant turn or a list of one. `label` true marks a desirable answer, false an
/// undesirable one. A preference pair `{"prompt", "chosen", "rejected"}` is read as two rows,
/// its chosen answer desirable and its rejected one undesirable, as TRL's
/// `unpair_preference_dataset` does. A bad line names file:line, or is skipped and counted
/// with `skipBadLines`, as `JSONLReader` does for every other format.
public enum UnpairedReader {
    public static func read(path: String, skipBadLines: Bool = false,
                            maxLineBytes: Int = JSONLReader.defaultMaxLineBytes) throws -> (records: [SourcedRecord], skipped: [SkippedLine]) {
        let (rows, skipped) = try JSONLReader.lines(path: path, skipBadLines: skipBadLines, maxLineBytes: maxLineBytes) {
            parseLine($0, maxLineBytes: maxLineBytes)
        }
        if rows.isEmpty {
            let noun = skipped.count == 1 ? "line" : "lines"
            throw DataError(path: path, skipped.first.map { "no rows (skipped \(skipped.count) bad \(noun) (first: \($0)))" } ?? "no rows (the file is empty or blank)")
        }
        let records = rows.flatMap { row in row.value.map { SourcedRecord(record: $0.record, path: path, line: row.line, label: $0.label) } }
        return (records, skipped)
    }

    /// One line as its labelled rows: one, or a pair's two.
    public static func parseLine(_ line: ArraySlice<UInt8>, maxLineBytes: Int = JSONLReader.defaultMaxLineBytes) -> Result<[(record: DataRecord, label: Bool)], JSONLReader.LineProblem> {
        switch JSONLReader.jsonObject(line, maxLineBytes: maxLineBytes) {
        case .failure(let problem): return .failure(problem)
        case .success(let fields):
            do { return .success(try rows(from: fields)) } catch let problem as JSONLReader.LineProblem {
                return .failure(problem)
            } catch { return .failure(JSONLReader.LineProblem("\(error)")) }
        }
    }

    static func rows(from fields: [String: Any]) throws -> [(record: DataRecord, label: Bool)] {
        typealias Problem = JSONLReader.LineProblem
        if fields["chosen"] != nil || fields["rejected"] != nil {
            if fields["completion"] != nil || fields["label"] != nil {
                throw Problem(#"has "chosen"/"rejected" and "completion"/"label": a line is a pair or one labelled row"#)
            }
            let pair = try PairReader.pair(from: fields)
            return [(pair.chosen, true), (pair.rejected, false)]
        }
        guard let value = fields["label"] else {
            throw Problem(#"missing field "label" (true for a desirable answer, false for an undesirable one), or a pair's "chosen" and "rejected""#)
        }
        guard HFConfigFields.isBool(value), let n = value as? NSNumber else {
            let shown = (value as? String).map(JSONText.brief) ?? JSONText.brief(structure: value)
                ?? (value is NSNull ? "null" : (value as? NSNumber).map { "\($0)" } ?? "another value")
            throw Problem(#"field "label" must be true or false, got \#(shown)"#)
        }
        let completion = try PairReader.answer("completion", in: fields)
        return [(try PairReader.prompted(fields, answers: [completion], for: "a labelled row")[0], n.boolValue)]
    }
}

extension UnpairedReader {
    /// The rows of a file read as completions (`sft-dist eval`) that are labelled false — kto's
    /// undesirable answers, which are no references — left out, and how many were (every
    /// completion reader ignores the "label" field).
    public static func withoutUndesirable(_ data: Dataset, path: String) -> (kept: Dataset, left: Int) {
        let lines = try? JSONLReader.lines(path: path, skipBadLines: true) { line -> Result<Bool, JSONLReader.LineProblem> in
            guard case .success(let row) = JSONLReader.jsonObject(line), let label = row["label"], HFConfigFields.isBool(label),
                  let n = label as? NSNumber else { return .success(false) }
            return .success(!n.boolValue)
        }
        let undesirable = Set(lines?.values.filter(\.value).map { "\(path):\($0.line)" } ?? [])
        guard !undesirable.isEmpty else { return (data, 0) }
        let kept = data.examples.filter { !undesirable.contains($0.source) }
        return (Dataset(examples: kept, report: data.report), data.count - kept.count)
    }
}

/// Unpaired preference rows as a `Dataset`: each row an example carrying its `label`, fitted
/// to `maxLength` as SFT rows are (a row left without an answer token is dropped: TRL drops
/// the rows whose prompt alone fills max_length).
extension Dataset {
    public convenience init(unpairedAt path: String, tokenizer: any Tokenizer, maxLength: Int,
                            truncation: Truncation = .right, template: ChatTemplate = .chatml,
                            skipBadLines: Bool = false) throws {
        let read = try UnpairedReader.read(path: path, skipBadLines: skipBadLines)
        let loaded = try Dataset(records: read.records, path: path, tokenizer: tokenizer, maxLength: maxLength,
                                 truncation: truncation, template: template, skippedLines: read.skipped,
                                 leftTruncationHelps: false)   // refused under kto (Recipe+Unpaired.swift)
        // The completion alone is the answer (TRL's completion_mask): the assistant turns of a
        // conversational prompt are context, where an SFT conversation trains every one of them.
        let answersOnly = loaded.examples.map { e -> Example in
            var a = e
            for t in 0..<min(e.promptLength, e.lossMask.count) { a.lossMask[t] = 0 }
            return a
        }
        // A completion cut away entirely, behind a prompt whose own turns kept the row: dropped,
        // as the rows left without an answer token are.
        var report = loaded.report
        let kept = answersOnly.filter { lossTokenCount($0) > 0 }
        report.droppedNoLossTokens += answersOnly.count - kept.count
        report.cutToNothing += answersOnly.count - kept.count
        if kept.isEmpty { throw DataError(path: path, "no examples left (\(report.summary))") }
        self.init(examples: kept, report: report)
    }

    /// Held out by line, as `split` does by example: a pair's two rows (one line) stay on one side,
    /// so no prompt is both trained and held out.
    public func splitByLine(heldOutFraction: Double, seed: UInt64) -> (train: Dataset, heldOut: Dataset) {
        var lines: [String] = [], seen = Set<String>()
        for e in examples where seen.insert(e.source).inserted { lines.append(e.source) }
        let byLine = Dataset(examples: lines.map { Example(ids: [0], lossMask: [0], promptLength: 0, answer: nil, source: $0) }, report: report)
            .split(heldOutFraction: heldOutFraction, seed: seed)
        let held = Set(byLine.heldOut.examples.map(\.source))
        return (Dataset(examples: examples.filter { !held.contains($0.source) }, report: report),
                Dataset(examples: examples.filter { held.contains($0.source) }, report: report))
    }

    /// The desirable rows: the references a generation's exact match answers against.
    public var desirableOnly: Dataset { Dataset(examples: examples.filter { $0.label != false }, report: report) }

    /// Rows labelled desirable and undesirable.
    public var labelCounts: (desirable: Int, undesirable: Int) {
        examples.reduce((0, 0)) { n, e in (n.0 + (e.label == true ? 1 : 0), n.1 + (e.label == false ? 1 : 0)) }
    }
}
