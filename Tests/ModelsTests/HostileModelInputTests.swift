import Foundation
import XCTest
import TestSupport
import TensorCore
@testable import Models

/// Issue 18, model files: non-regular files, absurd sizes in config.json, unreadable JSON,
/// non-finite weights, long pre-tokens and huge added-token lists. Every case ends in one line
/// naming the file (and the field or tensor), quickly, without allocating the absurd size.
final class HostileModelInputTests: XCTestCase {
    var tmp = ""

    override func setUpWithError() throws {
        tmp = try makeTemporaryDirectory("sft-dist-hostile")
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: tmp) }

    /// A copy of a fixture model directory.
    func copy(_ name: String) throws -> String {
        let dir = tmp + "/" + name + "-" + UUID().uuidString
        try FileManager.default.copyItem(atPath: HFModelTests.model(name), toPath: dir)
        return dir
    }

    /// Runs `body` on another thread and fails if it has not returned within `seconds` (a
    /// blocking open must fail the test, not hang the suite).
    func finishes(within seconds: Double, _ body: @escaping () -> String) -> String? {
        final class Box: @unchecked Sendable { var value: String?; init() {} }
        let box = Box(), done = DispatchSemaphore(value: 0)
        Thread.detachNewThread { box.value = body(); done.signal() }
        if done.wait(timeout: .now() + seconds) == .timedOut { XCTFail("still running after \(seconds) s"); return nil }
        return box.value
    }

    func loadError(_ dir: String) -> String {
        finishes(within: 30) { () -> String in
            do { _ = try ModelDirectory.load(dir); return "loaded" } catch { return "\(error)" }
        } ?? "hung"
    }

    // MARK: files that are not regular files

    func testFIFOAsWeightsIsRefusedWithoutBlocking() throws {
        let dir = try copy("gpt2")
        try FileManager.default.removeItem(atPath: dir + "/model.safetensors")
        XCTAssertEqual(mkfifo(dir + "/model.safetensors", 0o644), 0)
        let e = loadError(dir)
        XCTAssertTrue(e.contains("model.safetensors: not a regular file"), e)
    }

    func testConfigThatIsASymlinkToDevZeroIsNamed() throws {
        let dir = try copy("gpt2")
        try FileManager.default.removeItem(atPath: dir + "/config.json")
        try FileManager.default.createSymbolicLink(atPath: dir + "/config.json", withDestinationPath: "/dev/zero")
        XCTAssertEqual(loadError(dir), dir + "/config.json: not a regular file (a character device)")
        // A tokenizer.json that is a FIFO: refused too, not waited on.
        let tok = try copy("gpt2")
        try FileManager.default.removeItem(atPath: tok + "/tokenizer.json")
        XCTAssertEqual(mkfifo(tok + "/tokenizer.json", 0o644), 0)
        XCTAssertEqual(loadError(tok), tok + "/tokenizer.json: not a regular file (a FIFO)")
    }

    func testUnreadableConfigJSONSaysWhereAndWhy() throws {
        let cases: [([UInt8], String)] = [
            (Array(#"{"model_type": "gpt2", "layer_norm_epsilon": NaN}"#.utf8), "not valid JSON: expected a value, found 'N' at byte 45 (NaN and Infinity are not JSON numbers)"),
            (Array(#"{"model_type": "gpt2", "n_embd": -Infinity}"#.utf8), "(NaN and Infinity are not JSON numbers)"),
            (Array(#"{"model_type": "gpt2"#.utf8) + [0xFF] + Array(#""}"#.utf8), "not valid UTF-8 (invalid byte sequence at byte 20)"),
            (Array(#"[1, 2]"#.utf8), "the top level is an array, not a JSON object"),
            ([], "not valid JSON"),
            // Foundation reads a trailing comma; Python's json (transformers) does not.
            (Array("{\"model_type\": \"gpt2\", \"n_layer\": 2,\n}".utf8), "not valid JSON: a comma before a closing bracket at byte 35"),
            (Array(#"{"model_type": "gpt2", "architectures": ["GPT2LMHeadModel", ]}"#.utf8), "a comma before a closing bracket at byte 58"),
            // A hostile review: a BOM was read (Python's json refuses it); why Foundation
            // refused deep nesting or a number beyond a double was not said.
            ([0xEF, 0xBB, 0xBF] + Array(#"{"model_type": "gpt2"}"#.utf8), "not valid JSON: the file starts with a UTF-8 byte-order mark"),
            (Array(#"{"model_type": "gpt2", "x": "#.utf8) + Array(repeating: 0x5B, count: 600) + Array(repeating: 0x5D, count: 600) + [0x7D],
             "not valid JSON: it nests deeper than 512 levels"),
            (Array(#"{"model_type": "gpt2", "n_embd": 1e400}"#.utf8), "not valid JSON: the number 1e400 at byte 33 is beyond a double's range"),
            (Array(#"{"model_type": "gpt2", "s": "1e400", "n_embd": "#.utf8) + Array(repeating: 0x39, count: 400) + [0x7D],
             "not valid JSON: the number 99999999999999999999… (400 characters) at byte 47 is beyond a double's range"),
        ]
        for (bytes, expected) in cases {
            let dir = try copy("gpt2")
            try Data(bytes).write(to: URL(fileURLWithPath: dir + "/config.json"))
            let e = loadError(dir)
            XCTAssertTrue(e.hasPrefix(dir + "/config.json: ") && e.contains(expected), "\(bytes): \(e)")
        }
        // Commas and brackets inside strings are text.
        XCTAssertNil(JSONNesting.trailingComma(Array(#"{"a": ",}", "b": "\",]", "c": [1, 2]}"#.utf8)))
    }

    // MARK: absurd sizes

    func testAbsurdSizesAreRefusedBeforeAnythingIsAllocated() throws {
        let cases: [(String, [String: Any], String)] = [
            ("gpt2", ["n_embd": 1 << 40, "n_head": 1], "the model's size overflows"),
            ("gpt2", ["n_layer": 1_000_000_000], "but only"),
            ("llama", ["num_hidden_layers": 1_000_000_000], "but only"),
            ("llama", ["num_attention_heads": 1 << 40, "num_key_value_heads": 1 << 40, "head_dim": 1 << 40], "the model's size overflows"),
            ("llama", ["vocab_size": 999_999_999_999_999, "hidden_size": 999_999_999_999_999, "head_dim": 2], "the model's size overflows"),
        ]
        for (model, edits, expected) in cases {
            let dir = try copy(model)
            var cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/config.json"))) as! [String: Any]
            for (k, v) in edits { cfg[k] = v }
            try JSONSerialization.data(withJSONObject: cfg).write(to: URL(fileURLWithPath: dir + "/config.json"))
            let start = Date()
            let e = loadError(dir)
            XCTAssertTrue(e.hasPrefix(dir + "/config.json: ") && e.contains(expected), "\(edits): \(e)")
            XCTAssertLessThan(Date().timeIntervalSince(start), 5, "\(edits): the refusal must come before the layout is built")
        }
    }

    /// config.json's token ids are read as generation_config.json's: an id or a list of ids ≥ 0,
    /// or null. A string, a fraction or a negative id was silently ignored (GPT-2) or dropped
    /// from the stop ids (Llama); an id past vocab_size still loads, as in transformers.
    func testConfigTokenIdsThatAreNotIdsAreRefused() throws {
        let cases: [(String, String, Any, String)] = [
            ("gpt2", "eos_token_id", "x", "field \"eos_token_id\" must be an integer"),
            ("gpt2", "eos_token_id", 1.5, "field \"eos_token_id\" must be an integer"),
            ("llama", "eos_token_id", -5, "field \"eos_token_id\" must hold token ids ≥ 0, got -5"),
            ("llama", "eos_token_id", [1, "2"], "field \"eos_token_id[1]\" must be an integer"),
            ("llama", "bos_token_id", true, "field \"bos_token_id\" must be an integer"),
        ]
        for (model, key, value, expected) in cases {
            let dir = try copy(model)
            var cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/config.json"))) as! [String: Any]
            cfg[key] = value
            try JSONSerialization.data(withJSONObject: cfg).write(to: URL(fileURLWithPath: dir + "/config.json"))
            let e = loadError(dir)
            XCTAssertTrue(e.hasPrefix(dir + "/config.json: ") && e.contains(expected), "\(key)=\(value): \(e)")
        }
        for value in [NSNull(), 99_999, [1, 2]] as [Any] {
            let dir = try copy("gpt2")
            var cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/config.json"))) as! [String: Any]
            cfg["eos_token_id"] = value
            try JSONSerialization.data(withJSONObject: cfg).write(to: URL(fileURLWithPath: dir + "/config.json"))
            XCTAssertEqual(loadError(dir), "loaded", "eos_token_id=\(value)")
        }
    }

    /// The memory check compares with what is available, not a fixed size: a model that fits
    /// passes, the same model against less memory does not.
    func testMemoryCheckUsesTheAvailableMemory() throws {
        let plan = GPT2Config(vocabSize: 256, contextLength: 64, embedDim: 32, layers: 2, heads: 2).layoutPlan
        let bytes = plan.storeFloats! * ModelMemoryCheck.bytesPerParameter(.training)
        XCTAssertEqual(plan.storeFloats, plan.layout.reduce(0) { $0 + ParameterStore.alignedCount($1.shape)! })
        XCTAssertNoThrow(try ModelMemoryCheck.check(plan, path: "c.json", available: bytes))
        XCTAssertThrowsError(try ModelMemoryCheck.check(plan, path: "c.json", available: bytes - 1)) {
            XCTAssertTrue("\($0)".hasPrefix("c.json: the model has \(plan.storeFloats!) parameters"), "\($0)")
        }
        XCTAssertNotNil(MemoryBudget.availableBytes())
        // A model that only runs forward (eval, score, generate) never touches its mapped
        // gradients: it needs half, and was refused at the training figure.
        XCTAssertNoThrow(try ModelMemoryCheck.check(plan, path: "c.json", use: .inference, available: bytes / 2, addressSpace: nil))
        XCTAssertThrowsError(try ModelMemoryCheck.check(plan, path: "c.json", use: .inference, available: bytes / 2 - 1, addressSpace: nil)) {
            XCTAssertTrue("\($0)".contains("(values), but only"), "\($0)")
        }
        // Mapped, they still take address space under ulimit -v.
        XCTAssertThrowsError(try ModelMemoryCheck.check(plan, path: "c.json", use: .inference, available: nil, addressSpace: bytes - 1)) {
            XCTAssertTrue("\($0)".contains("of address space is left under ulimit -v"), "\($0)")
        }
    }

    // MARK: non-finite weights

    func testNonFiniteWeightsAreRefusedNamingTheTensor() throws {
        for bad: Float in [.nan, .infinity, -.infinity] {
            let model = GPT2(config: GPT2Config(vocabSize: ByteTokenizer().vocabSize, contextLength: 16, embedDim: 8, layers: 1, heads: 2), seed: 1)
            model.parameters["transformer.h.0.mlp.c_fc.weight"].data[5] = bad
            model.parameters["transformer.h.0.mlp.c_fc.weight"].data[7] = bad
            let dir = tmp + "/nonfinite-\(bad)"
            try ModelDirectory.save(model, tokenizer: ByteTokenizer(), to: dir)
            XCTAssertEqual(loadError(dir), dir + ": tensor \"transformer.h.0.mlp.c_fc.weight\" has 2 non-finite values (first: \(bad) at element 5)")
        }
        // Finite but beyond √Float.max: the first product overflows (3e38 loaded, and train wrote
        // its run directory before the first loss came out non-finite).
        let model = GPT2(config: GPT2Config(vocabSize: ByteTokenizer().vocabSize, contextLength: 16, embedDim: 8, layers: 1, heads: 2), seed: 1)
        model.parameters["transformer.h.0.mlp.c_fc.weight"].data[3] = 3e38
        let dir = tmp + "/huge"
        try ModelDirectory.save(model, tokenizer: ByteTokenizer(), to: dir)
        XCTAssertEqual(loadError(dir), dir + ": tensor \"transformer.h.0.mlp.c_fc.weight\" has 1 value of magnitude 1.8e19 or more (first: 3e+38 at element 3), where a product overflows float32 (a run that diverged?)")
    }

    // MARK: tokenizer

    /// The quadratic rescan this replaced (kept as the reference): merge the lowest-ranked
    /// adjacent pair, leftmost on ties, until none has a merge.
    static func referenceMerge(_ model: BPEModel, _ initial: [Int32]) -> [Int32] {
        var symbols = initial
        while symbols.count > 1 {
            var bestRank = Int32.max, bestPos = -1, bestId: Int32 = 0
            for i in 0..<(symbols.count - 1) {
                if let m = model.merges[BPEModel.key(symbols[i], symbols[i + 1])], m.rank < bestRank {
                    bestRank = m.rank; bestPos = i; bestId = m.id
                }
            }
            if bestPos < 0 { break }
            symbols[bestPos] = bestId
            symbols.remove(at: bestPos + 1)
        }
        return symbols
    }

    /// The heap merge gives the rescan's ids on random byte strings drawn from each fixture
    /// vocabulary's own characters (so merges fire), and a long run of spaces costs about linear time.
    func testHeapMergeMatchesTheRescanAndIsFastOnLongRuns() throws {
        var rng = SplitMix64(seed: 18)
        for kind in ["gpt2", "qwen2", "llama3"] {
            let tok = try BPETokenizer(path: BPETokenizerTests.root + "/tokenizers/\(kind)/tokenizer.json")
            let model = tok.bpeModel
            let symbols = Array(Set(model.vocab.values)).sorted()
            for _ in 0..<300 {
                let n = Int.random(in: 2...200, using: &rng)
                let base = (0..<4).map { _ in symbols.randomElement(using: &rng)! }
                let s = (0..<n).map { _ in Bool.random(using: &rng) ? base.randomElement(using: &rng)! : symbols.randomElement(using: &rng)! }
                XCTAssertEqual(model.mergeAll(s), Self.referenceMerge(model, s), kind)
            }
            // Growth, not a time limit: ten times the spaces must cost far less than the hundred
            // times a quadratic merge would (a loaded machine slows both runs alike).
            func timed(_ n: Int) -> (seconds: Double, ids: [Int32]) {
                let start = Date()
                let ids = tok.encode(String(repeating: " ", count: n))
                return (Date().timeIntervalSince(start), ids)
            }
            let tenth = timed(5_000).seconds, (whole, ids) = timed(50_000)
            XCTAssertLessThan(whole, max(30 * tenth, 0.5), "\(kind): 50,000 spaces took \(whole) s, 5,000 took \(tenth) s")
            XCTAssertEqual(tok.decode(ids), String(repeating: " ", count: 50_000))
            let small = Array(repeating: UInt8(0x20), count: 3000)
            XCTAssertEqual(model.tokenize(small), Self.referenceMerge(model, small.map { model.vocab[String(ByteLevel.characters[Int($0)])]! }))
        }
    }

    /// Pre-tokens longer than `maxPieceBytes` are merged piece by piece.
    func testAbsurdPreTokenIsMergedInBoundedPieces() throws {
        let tok = try BPETokenizer(path: BPETokenizerTests.root + "/tokenizers/gpt2/tokenizer.json")
        let piece = BPEModel.maxPieceBytes
        let bytes = [UInt8](repeating: 0x61, count: 2 * piece + 7)
        let whole = tok.bpeModel.tokenize(Array(bytes[..<piece]))
        XCTAssertEqual(tok.bpeModel.tokenize(bytes), whole + whole + tok.bpeModel.tokenize(Array(bytes[..<7])))
    }

    /// The sorted matcher finds what a scan of every token finds (leftmost-longest, first of
    /// equal contents), on random token sets over a small alphabet, where prefixes abound.
    func testAddedTokenMatcherEqualsALinearScan() {
        var rng = SplitMix64(seed: 0xADD)
        for _ in 0..<300 {
            let tokens: [(content: [UInt8], id: Int32)] = (0..<Int.random(in: 0...12, using: &rng)).map { i in
                ((0..<Int.random(in: 1...4, using: &rng)).map { _ in UInt8.random(in: 97...99, using: &rng) }, Int32(i))
            }
            let matcher = AddedTokenMatcher(tokens)
            let text = (0..<Int.random(in: 1...30, using: &rng)).map { _ in UInt8.random(in: 97...100, using: &rng) }
            for i in text.indices {
                var best: (length: Int, id: Int32)? = nil
                for (t, id) in tokens where t.count > (best?.length ?? 0) && t.count <= text.count - i && text[i..<(i + t.count)].elementsEqual(t) {
                    best = (t.count, id)
                }
                let got = matcher.longestMatch(text, at: i)
                XCTAssertTrue(got?.length == best?.length && got?.id == best?.id, "\(tokens) \(text) at \(i): \(String(describing: got)) vs \(String(describing: best))")
            }
        }
    }

    /// Many added tokens: up to the limit they load and match quickly; beyond it, or with an
    /// absurdly long content, the field is named.
    func testManyAddedTokensAreBounded() throws {
        let source = BPETokenizerTests.root + "/tokenizers/gpt2/tokenizer.json"
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: source))) as! [String: Any]
        let base = (json["model"] as! [String: Any])["vocab"] as! [String: Any]
        let first = base.count + 100, existing = (json["added_tokens"] as! [Any]).count
        func write(_ count: Int, longest: Int = 8) throws -> String {
            var json = json
            var added = json["added_tokens"] as! [[String: Any]]
            added += (0..<count).map { ["id": first + $0, "content": "<t\($0)>", "special": true] }
            added.append(["id": first + count, "content": String(repeating: "x", count: longest)])
            json["added_tokens"] = added
            let dir = tmp + "/tok-\(count)-\(longest)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: dir + "/tokenizer.json"))
            return dir + "/tokenizer.json"
        }
        let limit = TokenizerJSON.maxAddedTokens
        let ok = try BPETokenizer(path: try write(limit - 20))
        let text = String(repeating: "hello <t77> <t\(limit - 21)> <<t5>> <t", count: 2000)
        let start = Date()
        let ids = ok.encode(text)
        XCTAssertLessThan(Date().timeIntervalSince(start), 10)
        XCTAssertEqual(ids.filter { $0 == Int32(first + 77) }.count, 2000)
        XCTAssertEqual(ok.decode(ids), text)
        XCTAssertThrowsError(try BPETokenizer(path: try write(limit + 1))) {
            XCTAssertTrue("\($0)".hasSuffix("tokenizer.json: field \"added_tokens\" has \(existing + limit + 2) entries; at most \(limit) are supported"), "\($0)")
        }
        XCTAssertThrowsError(try BPETokenizer(path: try write(1, longest: TokenizerJSON.maxAddedTokenBytes + 1))) {
            XCTAssertTrue("\($0)".contains("content\" is \(TokenizerJSON.maxAddedTokenBytes + 1) bytes long"), "\($0)")
        }
    }
}
