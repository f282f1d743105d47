import Foundation
import Models

/// Any program as a reward: started once per batch with `/bin/sh -c COMMAND` in its own
/// process group, it reads one JSON object per line on stdin (`{"prompt", "completion",
/// "reference", "source", "columns"}`, `columns` the row's other fields, `RowColumns`: TRL's
/// reward kwargs) and must write one number per line on stdout, in order (LF or
/// CRLF line ends). As a rollout reward (`acceptsNull`), a line may instead read `null` (or
/// Python's `None`): the completion is not one this function scores — TRL's reward function
/// returning None, for a dataset that mixes tasks — and its reward is NaN, read by the
/// advantages as unscorable (`RewardAggregation`). A crash, a timeout, a wrong number of lines, a line that is not a number
/// or more output than a batch of numbers needs is an error naming the example it concerns;
/// the timeout covers the whole batch, and the scorer's process group is ended with it.
public final class ExternalScorer: Scorer {
    public let name = "command"
    public let command: String
    public let timeout: Double
    /// A score is a number: a longer line is not one, and reading it whole would let a
    /// broken scorer fill memory.
    public static let maxLineBytes = 1024
    public static let maxTimeout: Double = 86_400
    /// Whether a `null` line is read as "no reward" (NaN): set for `--reward command`, whose
    /// rollouts' advantages know what to do with one; an evaluation or self-training scorer must
    /// judge every answer.
    public var acceptsNull = false

    public init(command: String, timeout: Double) { self.command = command; self.timeout = timeout }

    public func score(_ items: [ScoringItem]) throws -> [Float] {
        if items.isEmpty { return [] }
        let input = items.map { item -> String in
            var obj: [String: Any] = ["prompt": item.prompt, "completion": item.completion, "source": item.source]
            obj["reference"] = item.reference ?? NSNull()
            obj["columns"] = item.columns.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) } ?? [String: Any]()
            let data = (try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])) ?? Data("{}".utf8)
            return String(decoding: data, as: UTF8.self)
        }.joined(separator: "\n") + "\n"

        // A scorer that exits without reading its input must not kill us with SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        let name = "scorer command \(MessageText.quoted(command, max: 60))"
        let maxOutput = items.count * (Self.maxLineBytes + 2)
        let process = ScorerProcess(command: command, timeout: timeout, maxLineBytes: Self.maxLineBytes, maxOutputBytes: maxOutput)
        let status: Int32, out: [UInt8], errTail: String
        switch try process.run(input: Array(input.utf8)) {
        case .timedOut:
            throw ScorerError("\(name) timed out after \(Self.seconds(timeout)) s on a batch of \(items.count) (first: \(items[0].source))")
        case .tooMuchOutput(total: false, let line):
            throw ScorerError("\(name): line \(line + 1) of its output is longer than \(Self.maxLineBytes) bytes, not a number (for \(items[min(line, items.count - 1)].source))")
        case .tooMuchOutput(total: true, _):
            throw ScorerError("\(name) wrote more than \(maxOutput) bytes for \(items.count) completions (first: \(items[0].source))")
        case .exited(let s, let o, let e):
            status = s; out = o; errTail = e
        }
        let lastErr = MessageText.oneLine(errTail.split(whereSeparator: \.isNewline).last.map(String.init) ?? "", max: 100)
        if status & 0x7F != 0 {
            throw ScorerError("\(name) was killed by signal \(status & 0x7F) on a batch starting at \(items[0].source)\(lastErr.isEmpty ? "" : " (stderr: \(lastErr))")")
        }
        if (status >> 8) & 0xFF != 0 {
            throw ScorerError("\(name) failed with status \((status >> 8) & 0xFF) on a batch starting at \(items[0].source)\(lastErr.isEmpty ? "" : " (stderr: \(lastErr))")")
        }
        // Split bytes, not Characters: "\r\n" is one Character and would not split at "\n".
        var lines = out.split(separator: 0x0A, omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        guard lines.count == items.count else {
            throw ScorerError("\(name) wrote \(lines.count) scores for \(items.count) completions (first: \(items[0].source))")
        }
        return try lines.enumerated().map { i, bytes in
            let s = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if s == "null" || s == "None" {
                guard acceptsNull else {
                    throw ScorerError("\(name): line \(i + 1) of its output is \(s) (no score) for \(items[i].source); this scorer must judge every answer (only a --reward command may leave a rollout unscored)")
                }
                return .nan
            }
            // Decimal, as every number sft-dist reads (`Double(decimal:)`: no hexadecimal, no NUL).
            let read = Double(decimal: s)
            guard let v = read, v.isFinite else {
                throw ScorerError("\(name): line \(i + 1) of its output is \(MessageText.quoted(s, max: 40)), not a \(read == nil ? "decimal" : "finite") number (for \(items[i].source))")
            }
            guard Float(v).isFinite else {
                throw ScorerError("\(name): line \(i + 1) of its output is \(MessageText.quoted(s, max: 40)), beyond float32's range (largest magnitude 3.4e38) (for \(items[i].source))")
            }
            return Float(v)
        }
    }

    /// 0.5 → "0.5", 60 → "60".
    static func seconds(_ t: Double) -> String { t == t.rounded() && t < 1e15 ? String(Int(t)) : String(t) }
}
