import Foundation
import Models
import TensorCore

/// The record shapes a JSONL line may have.
public enum DataRecord: Sendable, Equatable {
    case promptCompletion(prompt: String, completion: String)
    case messages([ChatMessage])
    /// TRL's conversational prompt/completion row: the turns before the answer, and the answer
    /// (`PromptedConversation.swift`).
    case promptedConversation(prompt: [ChatMessage], completion: ChatMessage)
    /// `{"text": ...}`: plain text, every token trained (TRL's language-modeling rows).
    case text(String)

    /// Only a prompt, as `Rows.examplesOrPrompts` reads it (`ChatFormat.promptOnly`): a
    /// `{"prompt"}` row with no completion, or messages that do not end with an assistant turn
    /// (the whole conversation is the prompt, as a TRL conversational prompt).
    public var isPromptOnly: Bool {
        switch self {
        case .promptCompletion(_, let completion): return completion.isEmpty
        case .messages(let messages): return messages.last?.role != .assistant
        case .promptedConversation, .text: return false
        }
    }
}

/// A parsed record and the line it came from.
public struct SourcedRecord: Sendable, Equatable {
    public var record: DataRecord
    public var path: String
    public var line: Int
    /// An unpaired preference row's label, carried to `Example.label` (UnpairedReader).
    public var label: Bool? = nil
    /// `"path:line"`, the form `Example.source` and messages use.
    public var source: String { "\(path):\(line)" }

    public init(record: DataRecord, path: String, line: Int, label: Bool? = nil) {
        self.record = record
        self.path = path
        self.line = line
        self.label = label
    }
}

/// A line passed over because of `skipBadLines`.
public struct SkippedLine: Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var line: Int
    public var reason: String
    /// `path:line: reason`, the message the line would have failed with.
    public var description: String { "\(path):\(line): \(reason)" }
}

public struct JSONLReadResult: Sendable, Equatable {
    public var path: String
    public var records: [SourcedRecord]
    public var skipped: [SkippedLine]

    /// `"skipped 3 bad lines (first: data.jsonl:7: invalid JSON (...))"`, or nil if none.
    public var skippedSummary: String? {
        guard let first = skipped.first else { return nil }
        let noun = skipped.count == 1 ? "line" : "lines"
        return "skipped \(skipped.count) bad \(noun) (first: \(first))"
    }
}

/// Reads SFT data, one JSON object per line:
/// `{"prompt": str, "completion": str}` or
/// `{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}`.
/// Other keys are ignored. Blank lines are skipped; CRLF endings and a leading BOM are accepted.
///
/// The file is split into lines by hand, not by a text API, so that line numbers are exact
/// even around invalid UTF-8, and a bad line is reported as that line rather than as the
/// whole file failing to decode.
public enum JSONLReader {
    /// What a line must hold: a training example (a non-empty completion or final assistant
    /// turn), or only a prompt (`generate --prompts`: a completion or assistant turn, if
    /// present, may be empty or missing; messages may end with a user turn), or either
    /// (`examplesOrPrompts`, grpo's `--data` and `--heldout`: TRL's GRPO datasets are
    /// prompt-only; a row with no "completion" field, or messages that end before an assistant turn).
    public enum Rows: Sendable { case examples, prompts, examplesOrPrompts }

    /// Longer lines are refused: they are almost always a file that is not JSONL at all,
    /// and would otherwise be tokenized only to be truncated away.
    public static let defaultMaxLineBytes = 1 << 20
    /// The field of a plain-text row (TRL's `dataset_text_field` and its default).
    public static let defaultTextField = "text"
    /// Larger files are refused before reading (a data set is held in memory, tokenized).
    public static let defaultMaxFileBytes = 1 << 34

    /// Reads and parses `path`, streaming: only one line at a time is held as bytes, so the
    /// limits apply as the file is read. Throws a `DataError` for a missing, unreadable or
    /// non-regular file (a FIFO, `/dev/zero`), one over `maxFileBytes`, the first bad line
    /// (unless `skipBadLines`), and when no record is left.
    public static func read(path: String, skipBadLines: Bool = false, maxLineBytes: Int = defaultMaxLineBytes,
                            maxFileBytes: Int = defaultMaxFileBytes, rows: Rows = .examples,
                            textField: String = defaultTextField) throws -> JSONLReadResult {
        let (values, skipped) = try lines(path: path, skipBadLines: skipBadLines, maxLineBytes: maxLineBytes,
                                          maxFileBytes: maxFileBytes) { parseLine($0, maxLineBytes: maxLineBytes, rows: rows, textField: textField) }
        return try result(values, skipped: skipped, path: path)
    }

    /// Parses file contents already in memory; `path` is only used in messages.
    public static func parse(_ bytes: [UInt8], path: String, skipBadLines: Bool = false,
                             maxLineBytes: Int = defaultMaxLineBytes, rows: Rows = .examples,
                             textField: String = defaultTextField) throws -> JSONLReadResult {
        try parse(chunks: [bytes[...]], path: path, skipBadLines: skipBadLines, maxLineBytes: maxLineBytes, rows: rows, textField: textField)
    }

    /// Contents arriving in pieces, as `read` gets them (tests cut them anywhere).
    static func parse(chunks: [ArraySlice<UInt8>], path: String, skipBadLines: Bool = false,
                      maxLineBytes: Int = defaultMaxLineBytes, rows: Rows = .examples,
                      textField: String = defaultTextField) throws -> JSONLReadResult {
        var collector = Collector<DataRecord>(path: path, skipBadLines: skipBadLines, maxLineBytes: maxLineBytes) {
            parseLine($0, maxLineBytes: maxLineBytes, rows: rows, textField: textField)
        }
        for c in chunks { try collector.feed(c) }
        let (values, skipped) = try collector.finish()
        return try result(values, skipped: skipped, path: path)
    }

    private static func result(_ values: [(value: DataRecord, line: Int)], skipped: [SkippedLine], path: String) throws -> JSONLReadResult {
        let records = values.map { SourcedRecord(record: $0.value, path: path, line: $0.line) }
        let result = JSONLReadResult(path: path, records: records, skipped: skipped)
        if records.isEmpty {
            if let summary = result.skippedSummary {
                throw DataError(path: path, "no examples (\(summary))")
            }
            throw DataError(path: path, "no examples (no rows: the file is empty or blank)")
        }
        return result
    }

    /// The line loop every row format shares (examples, prompts, preference pairs), streaming
    /// from `path`: exact line numbers, BOM and CRLF accepted, blank lines passed over, a bad
    /// line thrown as `path:line: reason` or (with `skipBadLines`) counted. `parse` turns one
    /// line into a value.
    public static func lines<T>(path: String, skipBadLines: Bool, maxLineBytes: Int = defaultMaxLineBytes,
                                maxFileBytes: Int = defaultMaxFileBytes,
                                parse: @escaping (ArraySlice<UInt8>) -> Result<T, LineProblem>) throws -> (values: [(value: T, line: Int)], skipped: [SkippedLine]) {
        let file: InputFile.Opened
        do { file = try InputFile.open(path, limit: maxFileBytes, what: "a JSONL file") } catch let p as InputFile.Problem {
            throw DataError(path: path, p.problem)
        }
        defer { close(file.fd) }
        var collector = Collector<T>(path: path, skipBadLines: skipBadLines, maxLineBytes: maxLineBytes, parse: parse)
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var total = 0
        while true {
            let n = chunk.withUnsafeMutableBytes { readSome(file.fd, $0) }
            if n < 0 {
                let code = errno
                if code == EINTR { continue }
                throw DataError(path: path, "cannot read (\(String(cString: strerror(code))))")
            }
            if n == 0 { break }
            total += n
            if total > maxFileBytes {  // grew while being read
                throw DataError(path: path, "more than the \(CheckedAllocation.describe(bytes: maxFileBytes)) allowed for a JSONL file")
            }
            try collector.feed(chunk[0..<n])
        }
        return try collector.finish()
    }

    /// Lines to values, for `read`, `parse` and `lines` alike.
    private struct Collector<T> {
        let path: String
        let skipBadLines: Bool
        let parse: (ArraySlice<UInt8>) -> Result<T, LineProblem>
        var splitter: LineSplitter
        var values: [(value: T, line: Int)] = []
        var skipped: [SkippedLine] = []

        init(path: String, skipBadLines: Bool, maxLineBytes: Int, parse: @escaping (ArraySlice<UInt8>) -> Result<T, LineProblem>) {
            self.path = path
            self.skipBadLines = skipBadLines
            self.parse = parse
            splitter = LineSplitter(maxLineBytes: maxLineBytes)
        }

        mutating func feed(_ bytes: ArraySlice<UInt8>) throws {
            var s = splitter
            defer { splitter = s }
            try s.feed(bytes) { try take($0, $1) }
        }

        mutating func finish() throws -> (values: [(value: T, line: Int)], skipped: [SkippedLine]) {
            var s = splitter
            try s.finish { try take($0, $1) }
            return (values, skipped)
        }

        private mutating func take(_ lineNumber: Int, _ line: LineSplitter.Line) throws {
            let parsed: Result<T, LineProblem>
            switch line {
            case .text(let bytes): parsed = parse(bytes)
            case .tooLong: parsed = .failure(LineProblem("line longer than \(splitter.maxLineBytes) bytes"))
            }
            switch parsed {
            case .success(let value):
                values.append((value, lineNumber))
            case .failure(let problem):
                guard skipBadLines else { throw DataError(path: path, line: lineNumber, problem.reason) }
                skipped.append(SkippedLine(path: path, line: lineNumber, reason: problem.reason))
            }
        }
    }

    /// Why one line was rejected; becomes `path:line: reason`.
    public struct LineProblem: Error, Equatable, Sendable {
        public var reason: String
        public init(_ reason: String) { self.reason = reason }
    }

    /// Parses one line (without its newline) into a record.
    public static func parseLine(_ line: ArraySlice<UInt8>, maxLineBytes: Int = defaultMaxLineBytes,
                                 rows: Rows = .examples, textField: String = defaultTextField) -> Result<DataRecord, LineProblem> {
        switch jsonObject(line, maxLineBytes: maxLineBytes) {
        case .failure(let problem): return .failure(problem)
        case .success(let fields):
            do {
                return .success(try record(from: fields, rows: rows, textField: textField))
            } catch let problem as LineProblem {
                return .failure(problem)
            } catch {
                return .failure(LineProblem("\(error)"))
            }
        }
    }

    /// One line as a JSON object: length, UTF-8 and JSON checked, in that order.
    public static func jsonObject(_ line: ArraySlice<UInt8>, maxLineBytes: Int = defaultMaxLineBytes) -> Result<[String: Any], LineProblem> {
        if let other = otherFileKind(line) { return .failure(other) }
        if line.count > maxLineBytes {
            return .failure(LineProblem("line longer than \(maxLineBytes) bytes"))
        }
        // Decoding with replacement and comparing back is a validity check that needs no
        // newer-OS-only API; a valid line round-trips byte for byte.
        if !String(decoding: line, as: UTF8.self).utf8.elementsEqual(line) {
            return .failure(LineProblem("invalid UTF-8"))
        }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(JSONByteOrderMarks.escaped(line)))  // a U+FEFF inside a value is kept
        } catch {
            return .failure(opensArray(line) ? jsonArrayFile : LineProblem("invalid JSON (\(describeJSONError(error)))"))
        }
        guard let fields = object as? [String: Any] else {
            return .failure(object is [Any] ? jsonArrayFile : LineProblem("expected a JSON object"))
        }
        // Foundation reads `{"prompt": "a", "completion": " b",}`; Python's json (and so TRL and
        // datasets) refuses it, so a file that trains here would fail there.
        if let at = JSONNesting.trailingComma(line) {
            return .failure(LineProblem("invalid JSON (a comma before a closing bracket at byte \(at); Python's json refuses it)"))
        }
        if let key = JSONDuplicateKeys.first(line) {
            return .failure(LineProblem("duplicate key \(JSONText.brief(key)) (a JSON parser would keep one of the values silently)"))
        }
        // TRL hands a conversational row's "tools" to apply_chat_template, and templates such as
        // Qwen2.5's and Llama 3.1's write the definitions into the prompt; ours leave them out,
        // so the row trained (and was scored and answered) on other tokens, without a word.
        // Text rows go through no template, in TRL as here: their "tools" is left alone.
        if holdsTools(fields["tools"]) && isConversational(fields) {
            return .failure(LineProblem(#"field "tools" is not supported (the tool definitions a chat template writes into the prompt would be left out)"#))
        }
        return .success(fields)
    }

    private static func record(from fields: [String: Any], rows: Rows, textField: String) throws -> DataRecord {
        let hasPromptFields = fields["prompt"] != nil || fields["completion"] != nil
        if fields[textField] != nil && !hasPromptFields && fields["messages"] == nil {
            // TRL's language-modeling rows (its default dataset_text_field). Beside "messages" or
            // "prompt" those are read and "text" is ignored, as TRL does (an exported table's
            // text column, `generate --json` output used as prompts).
            if rows == .prompts {
                throw LineProblem(#"a {"text"} row has no prompt to answer: give "prompt" (or "messages")"#)
            }
            let text = try stringField(textField, in: fields)
            if text.isEmpty { throw LineProblem(textField == defaultTextField ? "empty text" : #"empty "\#(textField)""#) }
            return .text(text)
        }
        if let messages = fields["messages"] {
            if hasPromptFields {
                throw LineProblem(#"has both "messages" and "prompt"/"completion"; use one format per line"#)
            }
            return .messages(try chatMessages(from: messages, rows: rows))
        }
        if let conversation = try promptedConversation(from: fields, rows: rows) { return conversation }
        if rows == .prompts || (rows == .examplesOrPrompts && fields["completion"] == nil && fields["prompt"] != nil) {
            guard fields["prompt"] != nil else { throw LineProblem(#"missing field "prompt" (or "messages")"#) }
            let completion = fields["completion"] == nil ? "" : try stringField("completion", in: fields)
            return .promptCompletion(prompt: try stringField("prompt", in: fields), completion: completion)
        }
        guard hasPromptFields else {
            throw LineProblem(#"missing fields: need "prompt" and "completion", "messages", or "\#(textField)""#)
        }
        let prompt = try stringField("prompt", in: fields)
        let completion = try stringField("completion", in: fields)
        if completion.isEmpty { throw LineProblem("empty completion") }
        return .promptCompletion(prompt: prompt, completion: completion)
    }

    /// Messages are indexed from 0 in messages (`messages[2]: ...`), as in the JSON array.
    static func chatMessages(from value: Any, rows: Rows) throws -> [ChatMessage] {
        guard let items = value as? [Any] else {
            throw LineProblem(#"field "messages" must be an array"#)
        }
        if items.isEmpty { throw LineProblem(#""messages" is empty"#) }
        var messages: [ChatMessage] = []
        for (index, item) in items.enumerated() {
            guard let turn = item as? [String: Any] else {
                throw LineProblem("messages[\(index)] must be an object")
            }
            let roleName: String
            let content: String
            do {
                roleName = try stringField("role", in: turn)
                content = try stringField("content", in: turn)
            } catch let problem as LineProblem {
                throw LineProblem("messages[\(index)]: \(problem.reason)")
            }
            guard let role = ChatMessage.Role(rawValue: roleName) else {
                throw LineProblem("messages[\(index)]: unknown role \(JSONText.brief(roleName)) (expected system, user or assistant)")
            }
            // The templates render tool calls into the turn; they were dropped without a word.
            // (An empty list or object, as OpenAI-style exports write, holds no call.)
            for field in ["tool_calls", "function_call"] where Self.holdsSomething(turn[field]) {
                throw LineProblem("messages[\(index)]: field \"\(field)\" is not supported (tool calls would be left out of the turn the model trains on)")
            }
            var reasoning: String? = nil
            if let r = turn["reasoning_content"], !(r is NSNull) {
                guard let text = r as? String else { throw LineProblem(#"messages[\#(index)]: field "reasoning_content" must be a string"#) }
                reasoning = text
            }
            messages.append(ChatMessage(role: role, content: content, reasoning: reasoning))
        }
        if rows == .prompts || (rows == .examplesOrPrompts && DataRecord.messages(messages).isPromptOnly) { return messages }
        guard let lastAssistant = messages.last(where: { $0.role == .assistant }) else {
            throw LineProblem(#""messages" has no assistant turn"#)
        }
        if lastAssistant.content.isEmpty { throw LineProblem("empty completion (last assistant turn)") }
        // Llama 3's template trims it, Qwen3's splits off a <think> block: whitespace or a think
        // block alone trained only the end-of-turn token (or reasoning and no reply).
        if !hasReply(lastAssistant.content) {
            let what = lastAssistant.content.contains("think>") ? "nothing after its <think> block" : "whitespace only, which a template such as Llama 3's trims to nothing"
            throw LineProblem("empty completion (last assistant turn: \(what))")
        }
        return messages
    }

    /// A row laid out by the chat template: "messages", or TRL's conversational prompt, answers
    /// or completion (lists of turns).
    static func isConversational(_ fields: [String: Any]) -> Bool {
        fields["messages"] != nil || ["prompt", "completion", "chosen", "rejected"].contains { fields[$0] is [Any] }
    }

    /// A "tools" value that defines a tool: an exported table may hold an empty one as "" or "[]".
    static func holdsTools(_ value: Any?) -> Bool {
        guard let text = value as? String else { return holdsSomething(value) }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return !["", "[]", "null"].contains(trimmed)
    }

    static func holdsSomething(_ value: Any?) -> Bool {
        switch value {
        case nil, is NSNull: return false
        case let list as [Any]: return !list.isEmpty
        case let object as [String: Any]: return !object.isEmpty
        default: return true
        }
    }

    /// Whether an assistant turn has a reply: something other than whitespace after its last `</think>`.
    static func hasReply(_ content: String) -> Bool {
        let reply = content.range(of: "</think>", options: .backwards).map { content[$0.upperBound...] } ?? content[...]
        return reply.contains { !$0.isWhitespace }
    }

    static func stringField(_ name: String, in fields: [String: Any]) throws -> String {
        guard let value = fields[name] else { throw LineProblem("missing field \"\(name)\"") }
        guard let string = value as? String else { throw LineProblem("field \"\(name)\" must be a string") }
        return string
    }

    /// Foundation's own message ("The data is not in the correct format") says nothing;
    /// the debug description carries the position ("Invalid value around character 8").
    private static func describeJSONError(_ error: Error) -> String {
        let nsError = error as NSError
        var text = (nsError.userInfo["NSDebugDescription"] as? String) ?? nsError.localizedDescription
        while text.hasSuffix(".") { text.removeLast() }
        return text
    }
}

/// The POSIX `read`, reachable under another name inside `JSONLReader`, whose own `read`
/// would shadow it.
private func readSome(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) -> Int {
    read(fd, buffer.baseAddress, buffer.count)
}
