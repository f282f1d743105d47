import Foundation
import XCTest
import Models
import TensorCore
@testable import Training

final class DataTests: XCTestCase {
    let tokenizer = ByteTokenizer()
    private var tempDir: URL!

    override func setUpWithError() throws {
        tempDir = FileManager.default.temporaryDirectory
            .appendingPathComponent("sft-dist-datatests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tempDir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: tempDir)
    }

    /// Writes `bytes` to a temp file and returns its path.
    private func file(_ name: String, _ bytes: [UInt8]) throws -> String {
        let url = tempDir.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }

    private func file(_ name: String, _ text: String) throws -> String {
        try file(name, Array(text.utf8))
    }

    private func bytes(_ s: String) -> [Int32] { Array(s.utf8).map(Int32.init) }

    /// The message reading `text` as a file fails with (path shown relative to tempDir).
    private func readError(_ text: String, maxLineBytes: Int = JSONLReader.defaultMaxLineBytes) -> String? {
        readError(Array(text.utf8), maxLineBytes: maxLineBytes)
    }

    private func readError(_ raw: [UInt8], maxLineBytes: Int = JSONLReader.defaultMaxLineBytes) -> String? {
        do {
            _ = try JSONLReader.parse(raw, path: "data.jsonl", maxLineBytes: maxLineBytes)
            return nil
        } catch let error as DataError {
            return error.description
        } catch {
            return "unexpected \(error)"
        }
    }

    private let good = #"{"prompt": "p", "completion": "c"}"#

    // MARK: - Reader

    func testEachMalformedLineClassHasItsMessage() {
        XCTAssertEqual(readError(good + "\n\n" + #"{"prompt": "p"}"#), #"data.jsonl:3: missing field "completion""#)
        XCTAssertEqual(readError(#"{"completion": "c"}"#), #"data.jsonl:1: missing field "prompt""#)
        XCTAssertEqual(readError(good + "\n" + #"{"prompt": 5, "completion": "c"}"#),
                       #"data.jsonl:2: field "prompt" must be a string"#)
        XCTAssertEqual(readError(#"{"prompt": "p", "completion": null}"#),
                       #"data.jsonl:1: field "completion" must be a string"#)
        XCTAssertEqual(readError(#"{"prompt": "p", "completion": ""}"#), "data.jsonl:1: empty completion")
        XCTAssertEqual(readError("[1, 2]"), "data.jsonl:1: a JSON array, not JSON Lines: this reader takes one JSON object per line; convert the file, e.g. jq -c '.[]' FILE > OUT.jsonl")
        XCTAssertEqual(readError(#"{"id": 1}"#),
                       #"data.jsonl:1: missing fields: need "prompt" and "completion", "messages", or "text""#)
        let invalidJSON = readError(good + "\n" + good + "\n" + #"{"prompt": "p""#)
        XCTAssertTrue(invalidJSON?.hasPrefix("data.jsonl:3: invalid JSON (") == true, invalidJSON ?? "nil")
        XCTAssertTrue(invalidJSON?.hasSuffix(")") == true)
        XCTAssertEqual(readError(Array((good + "\n").utf8) + [0x7B, 0xFF, 0xFE, 0x7D, 0x0A]),
                       "data.jsonl:2: invalid UTF-8")
        XCTAssertEqual(readError(good + "\n" + #"{"prompt": "\#(String(repeating: "x", count: 60))", "completion": "c"}"#,
                                 maxLineBytes: 50),
                       "data.jsonl:2: line longer than 50 bytes")
        // A key given twice, at the top or inside a message, is refused (a parser keeps one).
        XCTAssertEqual(readError(#"{"prompt": "p", "completion": " 3", "completion": " 4"}"#),
                       #"data.jsonl:1: duplicate key "completion" (a JSON parser would keep one of the values silently)"#)
        XCTAssertEqual(readError(#"{"messages": [{"role": "user", "content": "a", "content": "b"}]}"#),
                       #"data.jsonl:1: duplicate key "content" (a JSON parser would keep one of the values silently)"#)
        // A comma before a closing bracket: Foundation reads it, Python's json (TRL, datasets) does not.
        XCTAssertEqual(readError(#"{"prompt": "p", "completion": "c",}"#),
                       "data.jsonl:1: invalid JSON (a comma before a closing bracket at byte 33; Python's json refuses it)")
        XCTAssertEqual(readError(good + "\n" + #"{"messages": [{"role": "user", "content": "a"},  ]}"#),
                       "data.jsonl:2: invalid JSON (a comma before a closing bracket at byte 46; Python's json refuses it)")
        XCTAssertNil(readError(#"{"prompt": "p,]", "completion": ", }"}"#), "commas inside strings are text")
    }

    /// Equal keys in different objects, keys that appear as values or inside strings, and
    /// escaped quotes are not duplicates.
    func testDuplicateKeyScanner() {
        func first(_ s: String) -> String? { JSONDuplicateKeys.first(Array(s.utf8)) }
        XCTAssertNil(first(#"{"a": "a", "b": {"a": 1}, "c": [{"a": 1}, {"a": 2}], "d": "\"a\": 1, \"a\""}"#))
        XCTAssertNil(first(#"[{"a": 1}, {"a": 2}]"#))
        XCTAssertEqual(first(#"{"x": [1, {"y": 2}], "x": 3}"#), "x")
        XCTAssertEqual(first(#"{"o": {"k": 1, "k": 2}}"#), "k")
        XCTAssertEqual(first(#"{"q\"": 1, "q\"": 2}"#), #"q""#)
        XCTAssertEqual(first(#"{"prompt": "1+1=", "completion": "2", "compl\u0065tion": "3"}"#), "completion", "escaped spelling")
        XCTAssertNil(first(#"{"a\u0062": 1, "ab\u0063": 2}"#))
    }

    func testMalformedMessagesRecords() {
        XCTAssertEqual(readError(#"{"messages": [{"role": "user", "content": "hi"}]}"#),
                       #"data.jsonl:1: "messages" has no assistant turn"#)
        XCTAssertEqual(readError(#"{"messages": [{"role": "tool", "content": "x"}]}"#),
                       #"data.jsonl:1: messages[0]: unknown role "tool" (expected system, user or assistant)"#)
        XCTAssertEqual(readError(#"{"messages": [{"role": "user"}]}"#),
                       #"data.jsonl:1: messages[0]: missing field "content""#)
        XCTAssertEqual(readError(#"{"messages": [{"role": "user", "content": "a"}, {"role": 1, "content": "b"}]}"#),
                       #"data.jsonl:1: messages[1]: field "role" must be a string"#)
        XCTAssertEqual(readError(#"{"messages": ["hi"]}"#), "data.jsonl:1: messages[0] must be an object")
        XCTAssertEqual(readError(#"{"messages": "hi"}"#), #"data.jsonl:1: field "messages" must be an array"#)
        XCTAssertEqual(readError(#"{"messages": []}"#), #"data.jsonl:1: "messages" is empty"#)
        XCTAssertEqual(readError(#"{"messages": [{"role": "assistant", "content": ""}]}"#),
                       "data.jsonl:1: empty completion (last assistant turn)")
        // What the templates make empty: Llama 3 trims whitespace, Qwen3 splits off the think
        // block; each trained only the end-of-turn token (or reasoning without a reply).
        // The message says which (it named a <think> block for a row with none).
        for content in [#""<think>abc</think>""#, #""</think>""#, #""<think>a</think>\n\n""#] {
            XCTAssertEqual(readError(#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "# + content + "}]}"),
                           "data.jsonl:1: empty completion (last assistant turn: nothing after its <think> block)", content)
        }
        XCTAssertEqual(readError(#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": " \n "}]}"#),
                       "data.jsonl:1: empty completion (last assistant turn: whitespace only, which a template such as Llama 3's trims to nothing)")
        XCTAssertEqual(readError(#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok", "tool_calls": [{"type": "function"}]}]}"#),
                       #"data.jsonl:1: messages[1]: field "tool_calls" is not supported (tool calls would be left out of the turn the model trains on)"#)
        // An empty list (OpenAI-style exports) holds no call.
        XCTAssertNil(readError(#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok", "tool_calls": [], "function_call": null}]}"#))
        // A conversational row's tool definitions: TRL's chat template writes them into the
        // prompt, ours would have left them out without a word. Text rows go through no
        // template (TRL ignores their "tools" too), and an empty list or null holds none.
        let tools = #""tools": [{"type": "function", "function": {"name": "add"}}]"#
        let toolsRefused = #"data.jsonl:1: field "tools" is not supported (the tool definitions a chat template writes into the prompt would be left out)"#
        XCTAssertEqual(readError(#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}], "# + tools + "}"), toolsRefused)
        XCTAssertEqual(readError(#"{"prompt": [{"role": "user", "content": "hi"}], "# + tools + "}"), toolsRefused)
        XCTAssertNil(readError(#"{"prompt": "p", "completion": "c", "# + tools + "}"))
        XCTAssertNil(readError(#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}], "tools": []}"#))
        XCTAssertNil(readError(#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}], "tools": null}"#))
        for empty in [#""""#, #""[]""#, #"" null ""#] {
            XCTAssertNil(readError(#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}], "tools": "# + empty + "}"), empty)
        }
        XCTAssertEqual(readError(#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}], "tools": "[{\"type\": \"function\"}]"}"#), toolsRefused)
        let pair = #"{"prompt": [{"role": "user", "content": "hi"}], "chosen": "a", "rejected": "b", "# + tools + "}"
        guard case .failure(let problem) = PairReader.parseLine(ArraySlice(Array(pair.utf8))) else { return XCTFail("a pair with tools was read") }
        XCTAssertTrue(problem.reason.hasPrefix(#"field "tools" is not supported"#), problem.reason)
        XCTAssertEqual(readError(#"{"prompt": "p", "completion": "c", "messages": []}"#),
                       #"data.jsonl:1: has both "messages" and "prompt"/"completion"; use one format per line"#)
    }

    func testFileLevelErrors() throws {
        let missing = tempDir.appendingPathComponent("nope.jsonl").path
        XCTAssertThrowsError(try JSONLReader.read(path: missing)) {
            XCTAssertEqual("\($0)", "\(missing): no such file")
        }
        XCTAssertThrowsError(try JSONLReader.read(path: tempDir.path)) {
            XCTAssertEqual("\($0)", "\(self.tempDir.path): not a regular file (a directory)")
        }
        let empty = try file("empty.jsonl", "\n  \n")
        XCTAssertThrowsError(try JSONLReader.read(path: empty)) {
            XCTAssertEqual("\($0)", "\(empty): no examples (no rows: the file is empty or blank)")
        }
    }

    func testLineNumbersCRLFBlankLinesAndBOM() throws {
        let path = try file("crlf.jsonl", [0xEF, 0xBB, 0xBF] + Array((good + "\r\n\r\n   \n" + good).utf8))
        let result = try JSONLReader.read(path: path)
        XCTAssertEqual(result.records.map(\.line), [1, 4])
        XCTAssertEqual(result.records[1].source, "\(path):4")
        XCTAssertEqual(result.records[0].record, .promptCompletion(prompt: "p", completion: "c"))
    }

    /// A U+FEFF inside a value is text, as Python's json reads it: Foundation's parser dropped a
    /// raw one at the start of a string (the tokenizer then never saw it).
    func testAByteOrderMarkInsideAValueIsKept() throws {
        let bom = "\u{FEFF}"
        let line = #"{"prompt": ""# + bom + #"p", "completion": "a"# + bom + #"b"# + bom + #""}"#
        XCTAssertEqual(try JSONLReader.parseLine(Array(line.utf8)[...]).get(), .promptCompletion(prompt: bom + "p", completion: "a" + bom + "b" + bom))
        let escaped = #"{"prompt": "\ufeffp", "completion": "c"}"#
        XCTAssertEqual(try JSONLReader.parseLine(Array(escaped.utf8)[...]).get(), .promptCompletion(prompt: bom + "p", completion: "c"))
        // The file's own leading BOM is still skipped, and one between tokens is not JSON (nor in Python).
        let path = try file("bom.jsonl", [0xEF, 0xBB, 0xBF] + Array((#"{"prompt": ""# + bom + #"p", "completion": "c"}"#).utf8))
        XCTAssertEqual(try JSONLReader.read(path: path).records[0].record, .promptCompletion(prompt: bom + "p", completion: "c"))
        guard case .failure = JSONLReader.parseLine(Array((#"{"prompt": "p","# + bom + #" "completion": "c"}"#).utf8)[...]) else {
            return XCTFail("a BOM between tokens was accepted")
        }
        // A backslash before one is an invalid escape (as in Python), not the text "\ufeff".
        guard case .failure = JSONLReader.parseLine(Array((#"{"prompt": "a\"# + bom + #"b", "completion": "c"}"#).utf8)[...]) else {
            return XCTFail("a backslash-BOM escape was accepted")
        }
        // A key that starts with one is another key than the one without it.
        let keys = #"{""# + bom + #"prompt": "x", "prompt": "y", "completion": "c"}"#
        XCTAssertEqual(try JSONLReader.parseLine(Array(keys.utf8)[...]).get(), .promptCompletion(prompt: "y", completion: "c"))
        // A line that itself starts with one (files joined with cat) is read as before.
        XCTAssertEqual(try JSONLReader.parseLine(Array((bom + good).utf8)[...]).get(), .promptCompletion(prompt: "p", completion: "c"))
    }

    func testSkipBadLinesCountsAndSummarises() throws {
        let text = [good, "{broken", "", good, #"{"prompt": "p"}"#, #"{"prompt": 1, "completion": "c"}"#].joined(separator: "\n")
        let result = try JSONLReader.parse(Array(text.utf8), path: "data.jsonl", skipBadLines: true)
        XCTAssertEqual(result.records.map(\.line), [1, 4])
        XCTAssertEqual(result.skipped.map(\.line), [2, 5, 6])
        XCTAssertEqual(result.skipped[1].description, #"data.jsonl:5: missing field "completion""#)
        let summary = try XCTUnwrap(result.skippedSummary)
        XCTAssertTrue(summary.hasPrefix("skipped 3 bad lines (first: data.jsonl:2: invalid JSON ("), summary)

        XCTAssertThrowsError(try JSONLReader.parse(Array("{x\n".utf8), path: "bad.jsonl", skipBadLines: true)) {
            XCTAssertTrue("\($0)".hasPrefix("bad.jsonl: no examples (skipped 1 bad line (first: bad.jsonl:1: invalid JSON"), "\($0)")
        }
    }

    // MARK: - Formats and masks

    func testPromptCompletionMask() throws {
        let record = SourcedRecord(record: .promptCompletion(prompt: "ab", completion: "c"), path: "d.jsonl", line: 3)
        let e = try ChatFormat.example(from: record, tokenizer: tokenizer)
        XCTAssertEqual(e.ids, [97, 98, 99, 256])
        XCTAssertEqual(e.lossMask, [0, 0, 1, 1])
        XCTAssertEqual(e.promptLength, 2)
        XCTAssertEqual(e.answer, "c")
        XCTAssertEqual(e.source, "d.jsonl:3")
        XCTAssertEqual(lossTokenCount(e), 2)
    }

    func testChatMLMaskMultiTurn() throws {
        let messages = [ChatMessage(role: .system, content: "s"), ChatMessage(role: .user, content: "u"),
                        ChatMessage(role: .assistant, content: "a"), ChatMessage(role: .user, content: "v"),
                        ChatMessage(role: .assistant, content: "bc")]
        let e = try ChatFormat.conversation(messages, source: "x:1", tokenizer: tokenizer)
        let nl: [Int32] = [10]
        var ids: [Int32] = [], mask: [UInt8] = []
        func add(_ t: [Int32], _ m: UInt8) { ids += t; mask += Array(repeating: m, count: t.count) }
        add([257] + bytes("system\n") + bytes("s") + [258] + nl, 0)
        add([257] + bytes("user\n") + bytes("u") + [258] + nl, 0)
        add([257] + bytes("assistant\n"), 0); add(bytes("a") + [258], 1); add(nl, 0)
        add([257] + bytes("user\n") + bytes("v") + [258] + nl, 0)
        add([257] + bytes("assistant\n"), 0)
        let promptLength = ids.count
        add(bytes("bc") + [258], 1); add(nl, 0)
        XCTAssertEqual(e.ids, ids)
        XCTAssertEqual(e.lossMask, mask)
        XCTAssertEqual(e.promptLength, promptLength)
        XCTAssertEqual(e.answer, "bc")
        XCTAssertEqual(lossTokenCount(e), 5)
        XCTAssertEqual(tokenizer.decode(Array(e.ids[..<e.promptLength])),
                       "<|im_start|>system\ns<|im_end|>\n<|im_start|>user\nu<|im_end|>\n<|im_start|>assistant\na<|im_end|>\n<|im_start|>user\nv<|im_end|>\n<|im_start|>assistant\n")
    }

    func testChatMLContentCannotInjectSpecials() throws {
        let e = try ChatFormat.conversation([ChatMessage(role: .user, content: "<|im_end|>"),
                                             ChatMessage(role: .assistant, content: "ok")],
                                            source: "x:1", tokenizer: tokenizer)
        XCTAssertEqual(e.ids.filter { $0 == 258 }.count, 2)  // only the two real turn ends
    }

    func testPlainTemplate() throws {
        let e = try ChatFormat.conversation([ChatMessage(role: .user, content: "q"), ChatMessage(role: .assistant, content: "a")],
                                            source: "x:1", tokenizer: tokenizer, template: .plain)
        XCTAssertEqual(e.ids, bytes("user: q\nassistant: a\n") + [256])
        XCTAssertEqual(e.lossMask, Array(repeating: 0, count: 19) + [1, 1, 1])
        XCTAssertEqual(e.promptLength, 19)
        XCTAssertEqual(e.answer, "a")
    }

    func testDatasetLoadsBothFormats() throws {
        let path = try file("mixed.jsonl", good + "\n" +
            #"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}"# + "\n")
        let data = try Dataset(path: path, tokenizer: tokenizer, maxLength: 64)
        XCTAssertEqual(data.count, 2)
        XCTAssertEqual(data[0].ids, [112, 99, 256])
        XCTAssertEqual(data[1].answer, "yo")
        XCTAssertEqual(data[1].source, "\(path):2")
        XCTAssertEqual(data.lossTokenTotal, 2 + 3)
        XCTAssertEqual(data.report.summary, "loaded 2 of 2 records from \(path)")
    }

    // MARK: - Truncation

    private func record(_ prompt: String, _ completion: String, line: Int = 1) -> SourcedRecord {
        SourcedRecord(record: .promptCompletion(prompt: prompt, completion: completion), path: "t.jsonl", line: line)
    }

    func testTruncationPolicies() throws {
        // "abcdef" + "xy" + eos = 9 tokens, cut to 5.
        let records = [record("abcdef", "xy"), record("p", "q", line: 2)]
        let right = try Dataset(records: records, path: "t.jsonl", tokenizer: tokenizer, maxLength: 5, truncation: .right)
        XCTAssertEqual(right.count, 1)  // prompt survives, all completion tokens lost -> dropped
        XCTAssertEqual(right.report.truncated, 1)
        XCTAssertEqual(right.report.droppedNoLossTokens, 1)
        XCTAssertEqual(right[0].source, "t.jsonl:2")

        let right8 = try Dataset(records: records, path: "t.jsonl", tokenizer: tokenizer, maxLength: 8, truncation: .right)
        XCTAssertEqual(right8[0].ids, bytes("abcdefxy"))
        XCTAssertEqual(right8[0].lossMask, [0, 0, 0, 0, 0, 0, 1, 1])
        XCTAssertEqual(right8[0].promptLength, 6)

        let left = try Dataset(records: records, path: "t.jsonl", tokenizer: tokenizer, maxLength: 5, truncation: .left)
        XCTAssertEqual(left.count, 2)
        XCTAssertEqual(left[0].ids, bytes("efxy") + [256])
        XCTAssertEqual(left[0].lossMask, [0, 0, 1, 1, 1])
        XCTAssertEqual(left[0].promptLength, 2)
        XCTAssertEqual(left[0].answer, "xy")
        XCTAssertEqual(left.report.truncated, 1)

        let drop = try Dataset(records: records, path: "t.jsonl", tokenizer: tokenizer, maxLength: 5, truncation: .drop)
        XCTAssertEqual(drop.count, 1)
        XCTAssertEqual(drop.report.droppedTooLong, 1)
        XCTAssertEqual(drop.report.summary, "loaded 1 of 2 records from t.jsonl (dropped 1 longer than 5 tokens)")

        XCTAssertThrowsError(try Dataset(records: [records[0]], path: "t.jsonl", tokenizer: tokenizer,
                                         maxLength: 5, truncation: .drop)) {
            XCTAssertEqual("\($0)", "t.jsonl: no examples left (loaded 0 of 1 records from t.jsonl (dropped 1 longer than 5 tokens)); the longest has 9 tokens; --truncation left keeps them, cut from their start (the prompt first)")
        }
        // The log's note says how many were too long, the longest, and what keeps them whole.
        XCTAssertEqual(right.report.longest, 9)
        XCTAssertEqual(right.report.cutToNothing, 1)
        XCTAssertEqual(right.report.lengthNote(setting: 5, isDefault: false, context: 64),
                       "note: 1 of 2 examples in t.jsonl are longer than max_length 5 and were cut (right), 1 of them to no trained token and so left out; the longest has 9 tokens: --max-length 9 keeps them whole")
        XCTAssertEqual(right8.report.lengthNote(setting: 8, isDefault: false, context: 64),
                       "note: 1 of 2 examples in t.jsonl are longer than max_length 8 and were cut (right); the longest has 9 tokens: --max-length 9 keeps them whole")
        XCTAssertEqual(drop.report.lengthNote(setting: 5, isDefault: false, context: 8),
                       "note: 1 of 2 examples in t.jsonl are longer than max_length 5 and were left out; the longest has 9 tokens, more than the model's context: --max-length 8 keeps the most")
        XCTAssertEqual(left.report.lengthNote(setting: 64, isDefault: true, context: 5),
                       "note: 1 of 2 examples in t.jsonl are longer than the model's context of 5 tokens and were cut (left); the longest has 9 tokens")
        XCTAssertEqual(left.report.lengthNote(setting: 5, isDefault: true, context: 64),
                       "note: 1 of 2 examples in t.jsonl are longer than max_length 5 (the default, sized for the built-in tasks) and were cut (left); the longest has 9 tokens: --max-length 9 keeps them whole")
        let whole = try Dataset(records: records, path: "t.jsonl", tokenizer: tokenizer, maxLength: 9, truncation: .right)
        XCTAssertNil(whole.report.lengthNote(setting: 9, isDefault: false, context: 64), "nothing was cut")
    }

    // MARK: - Split and shuffle

    func testSeededPermutation() {
        let p = seededPermutation(count: 100, seed: 7)
        XCTAssertEqual(p.sorted(), Array(0..<100))
        XCTAssertEqual(p, seededPermutation(count: 100, seed: 7))
        XCTAssertNotEqual(p, seededPermutation(count: 100, seed: 8))
        XCTAssertNotEqual(p, Array(0..<100))
        XCTAssertEqual(seededPermutation(count: 0, seed: 1), [])
        XCTAssertEqual(seededPermutation(count: 1, seed: 1), [0])
        // Pinned so a change in the algorithm (which would reorder resumed runs) is noticed.
        var rng = SplitMix64(seed: 0)
        XCTAssertEqual(rng.next(), 0xE220_A839_7B1D_CDAF)
    }

    func testSplitIsDeterministicAndDisjoint() throws {
        let records = (0..<50).map { record("p\($0)", "c\($0)", line: $0 + 1) }
        let data = try Dataset(records: records, path: "s.jsonl", tokenizer: tokenizer, maxLength: 32)
        let (train, heldOut) = data.split(heldOutFraction: 0.2, seed: 42)
        XCTAssertEqual(heldOut.count, 10)
        XCTAssertEqual(train.count, 40)
        let trainSources = Set(train.examples.map(\.source)), heldSources = Set(heldOut.examples.map(\.source))
        XCTAssertTrue(trainSources.isDisjoint(with: heldSources))
        XCTAssertEqual(trainSources.union(heldSources).count, 50)
        let again = data.split(heldOutFraction: 0.2, seed: 42)
        XCTAssertEqual(again.heldOut.examples, heldOut.examples)
        XCTAssertEqual(again.train.examples, train.examples)
        XCTAssertNotEqual(data.split(heldOutFraction: 0.2, seed: 43).heldOut.examples, heldOut.examples)
        // File order is kept within each half.
        let lines = heldOut.examples.map { Int($0.source.split(separator: ":").last!)! }
        XCTAssertEqual(lines, lines.sorted())
        XCTAssertEqual(data.split(heldOutFraction: 0, seed: 1).heldOut.count, 0)
    }

    /// Files that are not JSON Lines say what they are: a JSON array (what load_dataset("json")
    /// also reads) on one line or many, a Parquet file.
    func testAJSONArrayOrParquetFileSaysWhatItIs() {
        func reason(_ bytes: [UInt8]) -> String {
            if case .failure(let p) = JSONLReader.parseLine(bytes[...]) { return p.reason }
            return "read"
        }
        let array = "a JSON array, not JSON Lines: this reader takes one JSON object per line; convert the file, e.g. jq -c '.[]' FILE > OUT.jsonl"
        XCTAssertEqual(reason(Array(#"[{"prompt": "a", "completion": "b"}]"#.utf8)), array)
        XCTAssertEqual(reason(Array("[".utf8)), array)
        XCTAssertEqual(reason(Array("  [ {".utf8)), array)
        XCTAssertTrue(reason(Array("{".utf8)).hasPrefix("invalid JSON ("))
        XCTAssertTrue(reason(Array("PAR1".utf8) + [0x15, 0xFF, 0xFE]).hasPrefix("a Parquet file (it begins with PAR1), not JSON Lines"))
        XCTAssertTrue(reason(Array("PAR1".utf8) + [0x15, 0x20]).hasPrefix("a Parquet file (it begins with PAR1), not JSON Lines"), "valid UTF-8 too")
        XCTAssertEqual(reason([0x41, 0xFF]), "invalid UTF-8")
    }
}
