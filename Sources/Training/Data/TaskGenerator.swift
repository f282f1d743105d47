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
public enum TaskGenerator {
    public static let kinds = ["add", "mul", "reverse", "copy", "repeat", "sort", "upper"]

    /// `count` records `["prompt": …, "completion": …]`; kinds are mixed uniformly.
    /// The same (count, seed) always gives the same records, and a longer run with the
    /// same seed extends a shorter one.
    public static func generate(count: Int, seed: UInt64) -> [[String: String]] {
        var rng = SplitMix64(seed: seed)
        var records: [[String: String]] = []
        records.reserveCapacity(max(0, count))
        for _ in 0..<max(0, count) {
            let prompt = makePrompt(kind: kinds[rng.below(kinds.count)], rng: &rng)
            // Answers come from the same solver evaluation uses, so the two cannot disagree.
            records.append(["prompt": prompt, "completion": expectedCompletion(forPrompt: prompt) ?? ""])
        }
        return records
    }

    private static func makePrompt(kind: String, rng: inout SplitMix64) -> String {
        func word(_ lengths: ClosedRange<Int>) -> String {
            let length = lengths.lowerBound + rng.below(lengths.count)
            return String((0..<length).map { _ in Character(Unicode.Scalar(UInt8(97 + rng.below(26)))) })
        }
        switch kind {
        case "add": return "add \(10 + rng.below(90)) \(10 + rng.below(90)) ="
        case "mul": return "mul \(1 + rng.below(9)) \(1 + rng.below(9)) ="
        case "reverse": return "reverse \(word(3...5)) ="
        case "copy": return "copy \(word(3...5)) ="
        case "repeat": return "repeat \(word(1...2)) \(2 + rng.below(2)) ="
        case "sort": return "sort \((0..<3).map { _ in String(rng.below(10)) }.joined()) ="
        default: return "upper \(word(3...5)) ="  // "upper", the last kind
        }
    }

    /// The correct completion for a generated prompt, recomputed from the prompt text
    /// alone, or nil if it is not one of these tasks. Rewards and exact-match evaluation
    /// can use it to check a model's answer to a prompt it has never seen.
    public static func expectedCompletion(forPrompt prompt: String) -> String? {
        let parts = prompt.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 3, parts.last == "=" else { return nil }
        let args = Array(parts[1..<(parts.count - 1)])
        func isLowercaseWord(_ s: String) -> Bool {
            !s.isEmpty && s.unicodeScalars.allSatisfy { $0.value >= 97 && $0.value <= 122 }
        }
        switch (parts[0], args.count) {
        case ("add", 2), ("mul", 2):
            guard let a = Int(args[0]), let b = Int(args[1]), a >= 0, b >= 0, a < 1000, b < 1000 else { return nil }
            return " \(parts[0] == "add" ? a + b : a * b)"
        case ("reverse", 1) where isLowercaseWord(args[0]):
            return " " + String(args[0].reversed())
        case ("copy", 1) where isLowercaseWord(args[0]):
            return " " + args[0]
        case ("repeat", 2) where isLowercaseWord(args[0]):
            guard let times = Int(args[1]), (1...9).contains(times) else { return nil }
            return " " + String(repeating: args[0], count: times)
        case ("sort", 1) where !args[0].isEmpty && args[0].allSatisfy(\.isASCII) && args[0].allSatisfy(\.isNumber):
            return " " + String(args[0].sorted())
        case ("upper", 1) where isLowercaseWord(args[0]):
            return " " + args[0].uppercased()
        default:
            return nil
        }
    }

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
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw OutputError("\(path): cannot write (\(MessageText.reason(error, for: path)))")
        }
    }
}
