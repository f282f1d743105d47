import Foundation
import Models

/// One preference pair as two records sharing a prompt: the prompt with the chosen answer,
/// and with the rejected one.
public struct PairRecord: Sendable, Equatable {
    public var chosen: DataRecord
    public var rejected: DataRecord
    /// TRL's optional `"margin"` column (RewardTrainer: −log σ(r_c − r_j − margin)); nil without one.
    public var margin: Double? = nil
    /// Whether both sides hold one prompt: false for a reward model's pair read whole
    /// (`ImplicitPrompt`), whose sides may differ anywhere.
    public var sharesPrompt = true
    /// TPO's gold answer (TRL's `"reference"` column) after the same prompt; nil unless read.
    public var gold: DataRecord? = nil
}

/// Reads preference pairs, one JSON object per line (DPO, issue 14):
/// `{"prompt": str, "chosen": str, "rejected": str}` or
/// `{"messages" (or "prompt"): [turns before the answer], "chosen": …, "rejected": …}`, where an answer is a
/// string, an assistant turn `{"role": "assistant", "content": str}`, or a list of exactly one
/// such turn (TRL's conversational form); or, without `"prompt"`, TRL's implicit-prompt
/// `{"chosen", "rejected"}`, each side the whole text or conversation (`ImplicitPrompt`). An empty answer, or a chosen answer identical to the
/// rejected one, is a bad line: it names file:line, or is skipped and counted with
/// `skipBadLines`, as `JSONLReader` does for every other bad line.
public enum PairReader {
    /// `readsMargins`: TRL's optional `"margin"` column is read (and a bad one is a bad line) —
    /// under `--objective reward`; the other pair objectives leave it, as TRL's trainers do. A
    /// row without a prompt (or with whole-conversation sides beside a text one) then keeps its
    /// sides whole (`ImplicitPrompt`), as TRL's RewardTrainer tokenizes them.
    /// `readsGold`: each row's third answer, TRL's TPO `"reference"` column, is read (and its
    /// absence is a bad line) — under `--objective tpo`.
    public static func read(path: String, skipBadLines: Bool = false, readsMargins: Bool = false, readsGold: Bool = false,
                            maxLineBytes: Int = JSONLReader.defaultMaxLineBytes) throws -> (pairs: [(pair: PairRecord, line: Int)], skipped: [SkippedLine]) {
        let (pairs, skipped) = try JSONLReader.lines(path: path, skipBadLines: skipBadLines, maxLineBytes: maxLineBytes) {
            parseLine($0, maxLineBytes: maxLineBytes, readsMargins: readsMargins, readsGold: readsGold)
        }
        if pairs.isEmpty {
            let noun = skipped.count == 1 ? "line" : "lines"
            let unit = Dataset.pairUnit(goldAnswers: readsGold)
            throw DataError(path: path, skipped.first.map { "no \(unit) (skipped \(skipped.count) bad \(noun) (first: \($0)))" } ?? "no \(unit) (no rows: the file is empty or blank)")
        }
        return (pairs.map { (pair: $0.value, line: $0.line) }, skipped)
    }

    public static func parseLine(_ line: ArraySlice<UInt8>, maxLineBytes: Int = JSONLReader.defaultMaxLineBytes,
                                 readsMargins: Bool = false, readsGold: Bool = false) -> Result<PairRecord, JSONLReader.LineProblem> {
        switch JSONLReader.jsonObject(line, maxLineBytes: maxLineBytes) {
        case .failure(let problem): return .failure(problem)
        case .success(let fields):
            do { return .success(try pair(from: fields, readsMargins: readsMargins, readsGold: readsGold)) } catch let problem as JSONLReader.LineProblem {
                return .failure(problem)
            } catch { return .failure(JSONLReader.LineProblem("\(error)")) }
        }
    }

    static func pair(from fields: [String: Any], readsMargins: Bool = false, readsGold: Bool = false) throws -> PairRecord {
        typealias Problem = JSONLReader.LineProblem
        if readsGold && fields["reference"] == nil {
            throw Problem(#"missing field "reference" (objective tpo's gold answer, TRL's TPO column, beside "chosen" and "rejected")"#)
        }
        var records: [DataRecord]
        var sharesPrompt = true
        // Without a prompt, or (TRL's maybe_extract_prompt, CPO's and ORPO's) with sides that are
        // whole conversations beside a text "prompt" (HuggingFaceH4/ultrafeedback_binarized, whose
        // "messages" repeats the chosen one): the prompt is the sides' shared beginning.
        let wholeSides = ["chosen", "rejected"].allSatisfy { ImplicitPrompt.isWholeConversation(fields[$0]) }
        if (fields["prompt"] == nil && fields["messages"] == nil) || (wholeSides && !(fields["prompt"] is [Any])) {
            // H4's "messages" is the chosen conversation, whole; prompt turns there would be lost.
            let messagesEnd = ((fields["messages"] as? [Any])?.last as? [String: Any])?["role"] as? String
            if fields["messages"] != nil && messagesEnd != "assistant" {
                throw Problem(#"has "messages" (the turns before the answer) beside whole conversations in "chosen" and "rejected": give the prompt's turns once, in "messages" with one-turn answers, or the whole conversations alone"#)
            }
            records = try ImplicitPrompt.records(fields, whole: readsMargins)
            sharesPrompt = !readsMargins
            if readsGold { records.append(try ImplicitPrompt.gold(fields, chosen: records[0])) }
        } else {
            let chosen = try answer("chosen", in: fields), rejected = try answer("rejected", in: fields)
            if chosen.unicodeScalars.elementsEqual(rejected.unicodeScalars) { throw Problem("chosen and rejected are identical") }
            records = try prompted(fields, answers: [chosen, rejected] + (readsGold ? [try answer("reference", in: fields)] : []), for: "a pair")
        }
        var margin: Double? = nil
        if readsMargins, let m = fields["margin"], !(m is NSNull) {
            guard let n = m as? NSNumber, !HFConfigFields.isBool(n), n.doubleValue.isFinite, Float(n.doubleValue).isFinite else {
                throw Problem("field \"margin\" must be a number within float32's range (TRL's RewardTrainer margin)")
            }
            margin = n.doubleValue
        }
        return PairRecord(chosen: records[0], rejected: records[1], margin: margin, sharesPrompt: sharesPrompt,
                          gold: readsGold ? records[2] : nil)
    }

    /// The line's prompt — `"prompt"` text, or the turns before the answer as `"messages"` or
    /// TRL's conversational `"prompt": [turns]` — followed by each of `answers`.
    static func prompted(_ fields: [String: Any], answers: [String], for what: String) throws -> [DataRecord] {
        typealias Problem = JSONLReader.LineProblem
        if fields["messages"] != nil && fields["prompt"] != nil { throw Problem(#"has both "messages" and "prompt"; use one"#) }
        if let messages = fields["messages"] ?? (fields["prompt"] as? [Any]) {
            let turns = try JSONLReader.chatMessages(from: messages, rows: .prompts)
            if turns.last?.role == .assistant {
                throw Problem(#""messages" ends with an assistant turn; for \#(what) it holds the turns before the answer"#)
            }
            return answers.map { .messages(turns + [ChatMessage(role: .assistant, content: $0)]) }
        }
        guard fields["prompt"] != nil else { throw Problem(#"missing field "prompt" (or "messages")"#) }
        let prompt = try JSONLReader.stringField("prompt", in: fields)
        return answers.map { .promptCompletion(prompt: prompt, completion: $0) }
    }

    /// `chosen` / `rejected`: a string, an assistant turn, or a list of one assistant turn.
    static func answer(_ name: String, in fields: [String: Any]) throws -> String {
        typealias Problem = JSONLReader.LineProblem
        guard let value = fields[name] else { throw Problem("missing field \"\(name)\"") }
        var text: String
        if let s = value as? String {
            text = s
        } else {
            let turn: Any = (value as? [Any]).flatMap { $0.count == 1 ? $0[0] : nil } ?? value
            guard let t = turn as? [String: Any], (t["role"] as? String) == "assistant", let c = t["content"] as? String else {
                throw Problem("field \"\(name)\" must be a string, an assistant turn or a list of one assistant turn")
            }
            text = c
        }
        if text.isEmpty { throw Problem("empty \(name)") }
        return text
    }
}
