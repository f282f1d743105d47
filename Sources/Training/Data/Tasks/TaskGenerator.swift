import Foundation
import Models
import TensorCore

/// The embedded default dataset: short, mechanically checkable tasks that a byte-level
/// GPT of one to a few million parameters partly learns within a few hundred steps, so a
/// fresh checkout can train and evaluate (exact match) without downloading anything.
///
/// Every prompt ends in `" ="` and every completion starts with a space, so the model
/// learns a clear "answer starts here" boundary. Prompts are at most 20 bytes and
/// completions at most 8, so a 64-token context holds any example.
///
/// | kind    | prompt            | completion |
/// |---------|-------------------|------------|
/// | add     | `add 23 45 =`     | ` 68`      |
/// | mul     | `mul 7 8 =`       | ` 56`      |
/// | reverse | `reverse abc =`   | ` cba`     |
/// | copy    | `copy abcd =`     | ` abcd`    |
/// | repeat  | `repeat ab 3 =`   | ` ababab`  |
/// | sort    | `sort 391 =`      | ` 139`     |
/// | upper   | `upper abc =`     | ` ABC`     |
///
/// That table is the default (`TaskOptions()`). For experiments, `TaskOptions` picks the kinds,
/// the operand size (`digits`), a rule variant (`TaskRules.swift`), a phrasing, noise
/// (`TaskNoise.swift`) and unlabelled rows; the rows then record what they are (`TaskRow`).
public enum TaskGenerator {
    public static let kinds = ["add", "mul", "reverse", "copy", "repeat", "sort", "upper"]

    /// `count` records `["prompt": …, "completion": …]` of the default options; kinds are mixed
    /// uniformly. The same (count, seed) always gives the same records, and a longer run with
    /// the same seed extends a shorter one.
    public static func generate(count: Int, seed: UInt64) -> [[String: String]] {
        rows(count: count, seed: seed, options: TaskOptions()).map { ["prompt": $0.prompt, "completion": $0.completion ?? ""] }
    }

    /// `count` rows under `options`. The same (count, seed, options) always gives the same rows,
    /// a longer run extends a shorter one, and noise changes only the rows it marks.
    public static func rows(count: Int, seed: UInt64, options: TaskOptions) -> [TaskRow] {
        var rng = SplitMix64(seed: seed)
        // Noise draws come from a stream of their own, so the prompts, and every row the noise
        // leaves alone, are the rows of the same options without noise.
        var noiseSeed = SplitMix64(seed: seed ^ 0x6E6F_6973_65)
        var noiseRNG = SplitMix64(seed: noiseSeed.next())
        let kinds = options.resolvedKinds
        var rows: [TaskRow] = []
        rows.reserveCapacity(max(0, count))
        for _ in 0..<max(0, count) {
            let kind = kinds[rng.below(kinds.count)]
            let size = options.digits.map { $0.lowerBound + rng.below($0.count) }
            let args = arguments(of: kind, size: size, rng: &rng)
            let prompt = self.prompt(kind: kind, arguments: args, options: options)
            // Answers come from the same solver evaluation uses, so the two cannot disagree.
            let answer = expectedCompletion(forPrompt: prompt) ?? ""
            var row = TaskRow(prompt: prompt, completion: options.unlabelled ? nil : answer, kind: kind,
                              digits: size ?? (kind == "repeat" ? args[0] : args.max { $0.count < $1.count }!).count,
                              variant: options.variant, template: options.template)
            // The wrong answer is drawn at this row's own size (without --digits the default
            // sizes vary: a 3-letter word must not get a 5-letter answer, which would mark it).
            if options.noise > 0 { addNoise(to: &row, answer: answer, arguments: args, size: row.digits, options: options, rng: &noiseRNG) }
            rows.append(row)
        }
        return rows
    }

    static func prompt(kind: String, arguments: [String], options: TaskOptions) -> String {
        options.template.wrap(([options.variant.operatorName(of: kind)] + arguments).joined(separator: " "))
    }

    /// A task's arguments: each kind's default sizes (`size` nil; the embedded set's draws, in
    /// their order), or every number `size` digits and every word `size` letters long.
    static func arguments(of kind: String, size: Int?, rng: inout SplitMix64) -> [String] {
        func word(_ lengths: ClosedRange<Int>) -> String {
            let length = lengths.lowerBound + rng.below(lengths.count)
            return String((0..<length).map { _ in Character(Unicode.Scalar(UInt8(97 + rng.below(26)))) })
        }
        func number(digits: Int) -> String {
            let low = digits == 1 ? 0 : power10(digits - 1)
            return String(low + rng.below(power10(digits) - low))
        }
        func digitString(_ length: Int) -> String { (0..<length).map { _ in String(rng.below(10)) }.joined() }
        switch kind {
        case "add":
            if let size { return [number(digits: size), number(digits: size)] }
            return ["\(10 + rng.below(90))", "\(10 + rng.below(90))"]
        case "mul":
            if let size { return [number(digits: size), number(digits: size)] }
            return ["\(1 + rng.below(9))", "\(1 + rng.below(9))"]
        case "repeat": return [word(size.map { $0...$0 } ?? 1...2), "\(2 + rng.below(2))"]
        case "sort": return [digitString(size ?? 3)]
        default: return [word(size.map { $0...$0 } ?? 3...5)]  // reverse, copy, upper
        }
    }

    private static func power10(_ n: Int) -> Int { (0..<n).reduce(1) { r, _ in r * 10 } }

    /// Writes one `{"prompt":…,"completion":…}` object per line, keys in that order, so the
    /// CLI can save `train.jsonl` / `heldout.jsonl` and read them back through `JSONLReader`
    /// like any user dataset.
    public static func writeJSONL(_ records: [[String: String]], to path: String) throws {
        var text = ""
        for (index, record) in records.enumerated() {
            guard let prompt = record["prompt"], let completion = record["completion"] else {
                throw DataError(path: path, "record \(index) lacks \"prompt\" or \"completion\"; nothing written")
            }
            text += "{\"prompt\":\(JSONText.quote(prompt)),\"completion\":\(JSONText.quote(completion))}\n"
        }
        try write(text, to: path)
    }

    /// Writes `rows` one per line, with the measurement fields unless `options` are the
    /// default (whose rows stay the embedded dataset's two-field form). All or nothing.
    public static func writeJSONL(_ rows: [TaskRow], options: TaskOptions, to path: String) throws {
        try write(rows.map { $0.jsonLine(measurement: !options.isDefault) + "\n" }.joined(), to: path)
    }

    private static func write(_ text: String, to path: String) throws {
        // `-`: standard output, as for most tools (a file named "-" was written before).
        if path == "-" { fputs(text, stdout); return }
        if path.isEmpty { throw EmptyPathError("--out: an empty path; give a file (or - for standard output)") }
        // An output that cannot be a file is an output problem (exit 6), as for every command.
        if let problem = ReplaceableOutput.notAFileProblem(path) { throw OutputError("\(path): \(problem)") }
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw OutputError("\(path): cannot write (\(MessageText.reason(error, for: path)))")
        }
    }
}
