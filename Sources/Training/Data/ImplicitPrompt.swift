import Foundation

/// Preference pairs whose prompt is implicit: `{"chosen", "rejected"}` without a `"prompt"`,
/// each side the whole text (Anthropic's HH-RLHF, `"\n\nHuman: …\n\nAssistant: …"`) or the whole
/// conversation (trl-lib/ultrafeedback_binarized). The prompt is the two sides' longest common
/// beginning, taken as TRL's `extract_prompt` (trl/data_utils.py) takes it for DPOTrainer,
/// CPOTrainer, ORPOTrainer and KTOTrainer. TRL's RewardTrainer tokenizes each side whole instead,
/// and so does `--objective reward` (`whole`): the split would tokenize a word cut at the sides'
/// first difference in two. Checked against TRL's own function:
/// Tests/TrainingTests/Fixtures/implicit-prompt-reference.json (scripts/make-implicit-prompt-references).
///
/// TRL's rule, followed to the character:
/// - texts are compared by Unicode code point, as Python indexes a `str` (not by Swift's
///   grapheme clusters: "e" + a combining accent is two);
/// - where the sides first differ, a single space just before goes to the answers
///   (`"…Assistant: It is 4."` gives the prompt `"…Assistant: It is"` and the answer `" 4."`);
/// - where the shorter side is a beginning of the longer, the loop ends on its last position,
///   which the answers keep (`"The answer is 4"` / `"…42"`: the prompt is `"The answer is "`).
///
/// Refused (one line) unless read whole, where TRL goes on: no shared beginning (TRL's prompt is empty, or when
/// the chosen text ends with a space, Python's index −1 makes it all but that space), and a
/// conversation whose sides differ before their last assistant turn (TRL keeps several turns
/// as the answer; a pair here answers with one turn).
enum ImplicitPrompt {
    /// How many leading elements TRL's `extract_prompt` takes as the prompt (0: none, which is
    /// refused). `a` and `b` are not empty. `isSpace`: the element TRL moves to the answers.
    static func promptLength<T: Equatable>(_ a: [T], _ b: [T], isSpace: (T) -> Bool) -> Int {
        let n = min(a.count, b.count)
        for i in 0..<n where a[i] != b[i] {
            return i > 0 && isSpace(a[i - 1]) ? i - 1 : i
        }
        return n - 1
    }

    /// A text pair's prompt and answers, or nil when they share no beginning.
    static func split(chosen: String, rejected: String) -> (prompt: String, chosen: String, rejected: String)? {
        let a = Array(chosen.unicodeScalars), b = Array(rejected.unicodeScalars)
        guard !a.isEmpty, !b.isEmpty else { return nil }
        let k = promptLength(a, b, isSpace: { $0 == " " })
        guard k > 0 else { return nil }
        func text(_ s: ArraySlice<Unicode.Scalar>) -> String { var u = String.UnicodeScalarView(); u.append(contentsOf: s); return String(u) }
        return (text(a[..<k]), text(a[k...]), text(b[k...]))
    }

    /// The records of a row without `"prompt"` or `"messages"`: both sides texts, or both whole
    /// conversations that differ only in their last assistant turn; with `whole` (a reward
    /// model's pairs), each side as it is, text or conversation, as TRL's RewardTrainer reads it.
    /// Sides compare by code point, and conversations turn by turn as their JSON objects (every
    /// key, as TRL compares dicts): "é" and "e" + U+0301 differ, as they do in Python.
    static func records(_ fields: [String: Any], whole: Bool = false) throws -> [DataRecord] {
        typealias Problem = JSONLReader.LineProblem
        let why = #"(without a "prompt", it is the shared beginning of "chosen" and "rejected", as TRL's extract_prompt takes it)"#
        for name in ["chosen", "rejected"] where fields[name] == nil { throw Problem("missing field \"\(name)\"") }
        // (A text "prompt" beside whole conversations is left aside, as maybe_extract_prompt leaves it.)
        let texts = [fields["chosen"], fields["rejected"]].map { $0 is String }
        if texts[0] != texts[1] {
            throw Problem(#"without a "prompt", "chosen" and "rejected" must both be texts or both whole conversations"#)
        }
        if texts[0] {
            let chosen = try PairReader.answer("chosen", in: fields), rejected = try PairReader.answer("rejected", in: fields)
            if chosen.unicodeScalars.elementsEqual(rejected.unicodeScalars) { throw Problem("chosen and rejected are identical") }
            if whole { return [.text(chosen), .text(rejected)] }
            guard let s = split(chosen: chosen, rejected: rejected) else {
                throw Problem("chosen and rejected leave an empty prompt \(why)")
            }
            return [.promptCompletion(prompt: s.prompt, completion: s.chosen), .promptCompletion(prompt: s.prompt, completion: s.rejected)]
        }
        let chosen = try conversation("chosen", in: fields), rejected = try conversation("rejected", in: fields)
        let turns = ["chosen", "rejected"].map { name in (fields[name] as! [Any]).map(Turn.init) }
        if turns[0] == turns[1] { throw Problem("chosen and rejected are identical") }
        if whole { return [.messages(chosen), .messages(rejected)] }
        let k = promptLength(turns[0], turns[1], isSpace: { _ in false })
        guard k > 0 else { throw Problem("chosen and rejected leave no turn for the prompt \(why)") }
        let answers = [chosen[k...], rejected[k...]]
        guard answers.allSatisfy({ $0.count == 1 && $0.first?.role == .assistant }) else {
            throw Problem("chosen and rejected must be one conversation that differs only in its last assistant turn \(why); after \(k) shared turn\(k == 1 ? "" : "s"), chosen has \(answers[0].count) more and rejected \(answers[1].count)")
        }
        return answers.map { .messages(Array(chosen[..<k]) + $0) }
    }

    /// TPO's gold answer on a row without a prompt (TRL's `_extract_triple_prompt`): `"reference"`
    /// must begin with the prompt taken from `"chosen"` and `"rejected"` — the same text, by code
    /// point, or the same turns — and is answered by the rest: a non-empty text, or one assistant
    /// turn. `chosen`: the row's chosen record, which holds that prompt.
    static func gold(_ fields: [String: Any], chosen: DataRecord) throws -> DataRecord {
        typealias Problem = JSONLReader.LineProblem
        let why = #"(without a "prompt", "reference" must begin with the prompt "chosen" and "rejected" share, as TRL's TPOTrainer requires)"#
        switch chosen {
        case .promptCompletion(let prompt, _):
            guard let text = fields["reference"] as? String else { throw Problem(#"field "reference" must be a text, as "chosen" and "rejected" are"#) }
            let p = Array(prompt.unicodeScalars), g = Array(text.unicodeScalars)
            guard g.count > p.count, Array(g[..<p.count]) == p else {
                throw Problem(g.starts(with: p) ? "empty reference after the prompt \(why)" : "reference does not begin with the prompt \(why)")
            }
            var rest = String.UnicodeScalarView(); rest.append(contentsOf: g[p.count...])
            return .promptCompletion(prompt: prompt, completion: String(rest))
        case .messages(let turns):
            let k = turns.count - 1
            let shared = (fields["chosen"] as! [Any]).prefix(k).map(Turn.init)
            guard let raw = fields["reference"] as? [Any], raw.count == k + 1, raw.prefix(k).map(Turn.init) == shared else {
                throw Problem("reference must be the \(k) prompt turn\(k == 1 ? "" : "s") of \"chosen\" and \"rejected\" followed by one assistant turn \(why)")
            }
            let gold = try conversation("reference", in: fields)
            guard gold.last?.role == .assistant else { throw Problem("reference must end with an assistant turn \(why)") }
            return .messages(gold)
        case .text, .promptedConversation: preconditionFailure("a pair read whole is text or messages (PairReader)")
        }
    }

    /// A turn as Python's `==` on its dict sees it (`Turn.same`).
    struct Turn: Equatable {
        let value: Any
        static func == (a: Turn, b: Turn) -> Bool { same(a.value, b.value) }

        /// Python's equality of two JSON values: strings by code point (not Swift's canonical
        /// equivalence), numbers by value (true as 1), lists in order, objects by keys and values.
        static func same(_ a: Any, _ b: Any) -> Bool {
            switch (a, b) {
            case (let x as String, let y as String): return x.unicodeScalars.elementsEqual(y.unicodeScalars)
            case (let x as NSNumber, let y as NSNumber): return x.doubleValue == y.doubleValue
            case (is NSNull, is NSNull): return true
            case (let x as [Any], let y as [Any]): return x.count == y.count && zip(x, y).allSatisfy { same($0, $1) }
            case (let x as [String: Any], let y as [String: Any]):
                return Set(x.keys) == Set(y.keys) && x.allSatisfy { k, v in same(v, y[k]!) }
            default: return false
            }
        }
    }

    /// Whether `value` is a conversation with more than its answer: a list of turns that is not one
    /// assistant turn (an answer beside its prompt).
    static func isWholeConversation(_ value: Any?) -> Bool {
        guard let turns = value as? [Any], let first = turns.first as? [String: Any] else { return false }
        return turns.count > 1 || (first["role"] as? String) != "assistant"
    }

    /// A side given as a whole conversation (a list of turns ending with an assistant turn).
    static func conversation(_ name: String, in fields: [String: Any]) throws -> [ChatMessage] {
        guard let turns = fields[name] as? [Any] else {
            throw JSONLReader.LineProblem("field \"\(name)\" must be a text or a list of turns")
        }
        do {
            return try JSONLReader.chatMessages(from: turns, rows: .examples)
        } catch let problem as JSONLReader.LineProblem {
            // chatMessages names the field "messages"; here it is this side.
            let named = JSONLReader.renamed(problem.reason, field: name)
            throw JSONLReader.LineProblem(named == problem.reason ? "field \"\(name)\": \(named)" : named)
        }
    }
}
