import Foundation
import XCTest
@testable import Models

/// Byte-level BPE ids must be identical to huggingface/tokenizers on every fixture string
/// (Fixtures/hf/expected/tokenizer_cases.json, written by scripts/make-hf-fixtures): unicode,
/// emoji, runs of whitespace, exotic spaces, digits, contractions, specials inside text.
final class BPETokenizerTests: XCTestCase {
    static let root = HFModelTests.root

    struct Case { let text: String; let ids: [Int32]; let plainIds: [Int32]; let decoded: String }

    static func cases(_ kind: String) throws -> [Case] {
        let data = try Data(contentsOf: URL(fileURLWithPath: root + "/expected/tokenizer_cases.json"))
        let all = try JSONSerialization.jsonObject(with: data) as! [String: [[String: Any]]]
        return all[kind]!.map {
            Case(text: $0["text"] as! String, ids: ($0["ids"] as! [Int]).map(Int32.init),
                 plainIds: ($0["plain_ids"] as! [Int]).map(Int32.init), decoded: $0["decoded"] as! String)
        }
    }

    func check(_ kind: String) throws {
        let tok = try BPETokenizer(path: Self.root + "/tokenizers/\(kind)/tokenizer.json")
        let cases = try Self.cases(kind)
        XCTAssertGreaterThan(cases.count, 40)
        for c in cases {
            XCTAssertEqual(tok.encode(c.text), c.ids, "\(kind): \(c.text.debugDescription)")
            XCTAssertEqual(tok.encodePlain(c.text), c.plainIds, "\(kind) plain: \(c.text.debugDescription)")
            XCTAssertEqual(tok.decode(c.ids), c.decoded, "\(kind) decode: \(c.text.debugDescription)")
        }
    }

    /// GPT-2: ByteLevel pre-tokenizer with the GPT-2 regex, legacy "a b" merges.
    func testGPT2StyleIdsMatchTokenizers() throws { try check("gpt2") }
    /// Qwen2: NFC, Split(\p{N} single digits) + ByteLevel, added non-special tokens.
    func testQwen2StyleIdsMatchTokenizers() throws { try check("qwen2") }
    /// Llama-3: Split(\p{N}{1,3}) + ByteLevel, ignore_merges, BOS from TemplateProcessing.
    func testLlama3StyleIdsMatchTokenizers() throws { try check("llama3") }

    /// The added tokens of a fixture tokenizer.json: content → id.
    static func added(_ kind: String) throws -> [String: Int32] {
        let data = try Data(contentsOf: URL(fileURLWithPath: root + "/tokenizers/\(kind)/tokenizer.json"))
        let j = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        var out: [String: Int32] = [:]
        for a in j["added_tokens"] as! [[String: Any]] { out[a["content"] as! String] = Int32(a["id"] as! Int) }
        return out
    }

    /// 250 random strings (specials, contractions, exotic whitespace, emoji, random characters
    /// assigned by Unicode 3.2) per tokenizer: ids equal tokenizers' (expected/tokenizer_fuzz.json).
    /// Read with the byte-faithful safetensors JSON parser: Foundation's JSONSerialization on
    /// Linux drops a U+FEFF that starts a string, and some fuzz strings start with one.
    func testRandomStringsMatchTokenizers() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.root + "/expected/tokenizer_fuzz.json"))
        let root = try data.withUnsafeBytes { try SafeTensorsJSON.Parser.parse($0) }
        guard case .object(let top) = root else { return XCTFail("not an object") }
        func field(_ k: String) -> SafeTensorsJSON.Value? { top.first { $0.key == k }?.value }
        guard case .array(let textValues)? = field("texts") else { return XCTFail("no texts") }
        let texts = textValues.compactMap { v -> String? in if case .string(let s) = v { return s }; return nil }
        XCTAssertEqual(texts.count, 250)
        XCTAssertTrue(texts.contains { $0.unicodeScalars.first == "\u{FEFF}" })
        for kind in ["gpt2", "qwen2", "llama3"] {
            let tok = try BPETokenizer(path: Self.root + "/tokenizers/\(kind)/tokenizer.json")
            guard case .array(let rows)? = field(kind) else { return XCTFail("no \(kind)") }
            let expected: [[Int32]] = rows.map { row in
                guard case .array(let ids) = row else { return [] }
                return ids.compactMap { v -> Int32? in if case .number(let t) = v { return Int32(t) }; return nil }
            }
            XCTAssertEqual(expected.count, texts.count)
            var mismatches = 0
            for (t, ids) in zip(texts, expected) where tok.encode(t) != ids {
                mismatches += 1
                if mismatches <= 3 { XCTFail("\(kind): \(t.debugDescription) → \(tok.encode(t)), tokenizers \(ids)") }
            }
            XCTAssertEqual(mismatches, 0, kind)
        }
    }

    /// ByteLevel(add_prefix_space: true): a space before every segment between added tokens.
    func testAddPrefixSpaceMatchesTokenizers() throws {
        let dir = NSTemporaryDirectory() + "prefix-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var j = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.root + "/tokenizers/gpt2/tokenizer.json"))) as! [String: Any]
        var pre = j["pre_tokenizer"] as! [String: Any]
        pre["add_prefix_space"] = true
        j["pre_tokenizer"] = pre
        try JSONSerialization.data(withJSONObject: j).write(to: URL(fileURLWithPath: dir + "/tokenizer.json"))
        let tok = try BPETokenizer(path: dir + "/tokenizer.json")
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.root + "/expected/tokenizer_cases_prefix_space.json"))
        let rows = try JSONSerialization.jsonObject(with: data) as! [[String: Any]]
        XCTAssertGreaterThan(rows.count, 40)
        for r in rows {
            let text = r["text"] as! String
            XCTAssertEqual(tok.encode(text), (r["ids"] as! [Int]).map(Int32.init), text.debugDescription)
        }
    }

    func testSpecialTokensAndConfig() throws {
        let q = try BPETokenizer(path: Self.root + "/tokenizers/qwen2/tokenizer.json")
        let qa = try Self.added("qwen2")
        XCTAssertEqual(q.specialTokenId("<|im_start|>"), qa["<|im_start|>"])
        XCTAssertEqual(q.eosId, qa["<|im_end|>"], "eos_token <|im_end|> from tokenizer_config.json")
        XCTAssertEqual(q.padId, qa["<|endoftext|>"])
        XCTAssertNil(q.bosId)
        XCTAssertNil(q.specialTokenId("<think>"), "a non-special added token is not a control token")
        XCTAssertTrue(q.chatTemplateText?.contains("<|im_start|>") ?? false)
        let l = try BPETokenizer(path: Self.root + "/tokenizers/llama3/tokenizer.json")
        let la = try Self.added("llama3")
        XCTAssertEqual(l.bosId, la["<|begin_of_text|>"])
        XCTAssertEqual(l.eosId, la["<|eot_id|>"])
        XCTAssertEqual(l.vocabSize, Int(la.values.max()!) + 1)
        XCTAssertTrue(l.chatTemplateText?.contains("<|start_header_id|>") ?? false)
    }

    /// tokenizer_config.json's add_bos_token does not add a BOS that tokenizer.json's
    /// post-processor does not: transformers 5 drops the field when tokenizer.json is there
    /// (`_from_pretrained`), so `AutoTokenizer` encodes without one (sft-dist added it: every
    /// example one token apart from TRL's, a hostile review). The log says so (`bosNote`).
    func testAddBosTokenFollowsThePostProcessorAsTransformers5Does() throws {
        let dir = NSTemporaryDirectory() + "addbos-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let source = Self.root + "/tokenizers/llama3/"
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: source + "tokenizer_config.json"))) as! [String: Any]
        config["add_bos_token"] = true
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: dir + "/tokenizer_config.json"))
        var j = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: source + "tokenizer.json"))) as! [String: Any]
        try JSONSerialization.data(withJSONObject: j).write(to: URL(fileURLWithPath: dir + "/tokenizer.json"))
        let with = try BPETokenizer(path: dir + "/tokenizer.json")
        XCTAssertNotNil(with.bosId)
        XCTAssertNil(with.bosNote)
        j["post_processor"] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true]
        try JSONSerialization.data(withJSONObject: j).write(to: URL(fileURLWithPath: dir + "/tokenizer.json"))
        let without = try BPETokenizer(path: dir + "/tokenizer.json")
        XCTAssertNil(without.bosId)
        XCTAssertEqual(without.templateBOS, "<|begin_of_text|>")
        XCTAssertTrue(without.bosNote?.contains("sets add_bos_token, which") == true, without.bosNote ?? "nil")
    }

    /// Every string survives encode → decode (byte-level BPE is lossless on valid UTF-8).
    func testRoundTrip() throws {
        let tok = try BPETokenizer(path: Self.root + "/tokenizers/llama3/tokenizer.json")
        for s in ["", "plain", "  many   spaces\n\n\t", "🇫🇷👨‍👩‍👧 ∑ x² 日本", "<|eot_id|>mixed<|begin_of_text|>"] {
            XCTAssertEqual(tok.decode(tok.encode(s)), s)
        }
        XCTAssertEqual(tok.decode([99_999]), "\u{FFFD}")
    }

    /// The generated HF tokenizer.json for the byte tokenizer encodes exactly as ByteTokenizer.
    func testByteTokenizerExportIsEquivalent() throws {
        let dir = NSTemporaryDirectory() + "byte-tok-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (name, data) in try HFTokenizerFiles.files(for: ByteTokenizer(), contextLength: 64) {
            try data.write(to: URL(fileURLWithPath: dir + "/" + name))
        }
        let hf = try BPETokenizer(path: dir + "/tokenizer.json")
        let byte = ByteTokenizer()
        XCTAssertEqual(hf.vocabSize, byte.vocabSize)
        XCTAssertEqual(hf.eosId, byte.eosId)
        XCTAssertEqual(hf.padId, byte.padId)
        for c in try Self.cases("gpt2") {
            XCTAssertEqual(hf.encode(c.text), byte.encode(c.text), c.text.debugDescription)
            XCTAssertEqual(hf.encodePlain(c.text), byte.encodePlain(c.text), c.text.debugDescription)
            XCTAssertEqual(hf.decode(byte.encode(c.text)), c.text)
        }
    }

    // MARK: bad tokenizer.json: one line naming the file and the field

    func tokenizerError(_ edit: (inout [String: Any]) -> Void) throws -> String {
        let dir = NSTemporaryDirectory() + "bad-tok-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var j = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.root + "/tokenizers/qwen2/tokenizer.json"))) as! [String: Any]
        edit(&j)
        try JSONSerialization.data(withJSONObject: j).write(to: URL(fileURLWithPath: dir + "/tokenizer.json"))
        do {
            _ = try BPETokenizer(path: dir + "/tokenizer.json")
            XCTFail("accepted a bad tokenizer.json")
            return ""
        } catch {
            XCTAssertFalse("\(error)".contains("\n"))
            XCTAssertTrue("\(error)".hasPrefix(dir + "/tokenizer.json: "), "\(error)")
            return "\(error)"
        }
    }

    func testBadTokenizerJSONIsNamed() throws {
        func model(_ f: @escaping (inout [String: Any]) -> Void) -> (inout [String: Any]) -> Void {
            { j in var m = j["model"] as! [String: Any]; f(&m); j["model"] = m }
        }
        let cases: [(String, (inout [String: Any]) -> Void)] = [
            ("field \"model.type\" is \"WordPiece\"", model { $0["type"] = "WordPiece" }),
            ("field \"model.dropout\"", model { $0["dropout"] = 0.1 }),
            ("field \"model.merges\" entry 0 makes", model { m in
                var merges = m["merges"] as! [Any]; merges[0] = ["Ġ", "Ġ"]; m["merges"] = merges
                var v = m["vocab"] as! [String: Any]; v["ĠĠ"] = nil; m["vocab"] = v }),
            ("field \"model.merges\" entry 1 must be", model { m in var merges = m["merges"] as! [Any]; merges[1] = 5; m["merges"] = merges }),
            // Values are quoted as JSON string literals (JSONText.brief), so the backslash is escaped.
            ("field \"pre_tokenizer.pretokenizers[0].pattern.Regex\" has an unsupported alternative \"\\\\p{N}{2}\"", { j in
                var p = j["pre_tokenizer"] as! [String: Any]; var seq = p["pretokenizers"] as! [[String: Any]]
                seq[0]["pattern"] = ["Regex": "\\p{N}{2}|\\s+"]; p["pretokenizers"] = seq; j["pre_tokenizer"] = p }),
            ("field \"pre_tokenizer.type\" is \"Metaspace\"", { $0["pre_tokenizer"] = ["type": "Metaspace"] }),
            ("field \"normalizer.type\" is \"Lowercase\"", { $0["normalizer"] = ["type": "Lowercase"] }),
            ("field \"decoder.type\" is \"WordPiece\"", { $0["decoder"] = ["type": "WordPiece"] }),
            ("field \"added_tokens[0]\" must have a non-negative integer \"id\"", { j in
                var a = j["added_tokens"] as! [[String: Any]]; a[0]["id"] = -1; j["added_tokens"] = a }),
            ("field \"added_tokens[0].lstrip\" is true", { j in
                var a = j["added_tokens"] as! [[String: Any]]; a[0]["lstrip"] = true; j["added_tokens"] = a }),
        ]
        for (fragment, edit) in cases {
            let e = try tokenizerError(edit)
            XCTAssertTrue(e.contains(fragment), "expected \(fragment) in: \(e)")
        }
    }

    func testMissingEOSIsNamed() throws {
        let dir = NSTemporaryDirectory() + "eos-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: Self.root + "/tokenizers/qwen2/tokenizer.json", toPath: dir + "/tokenizer.json")
        try Data("{\"eos_token\": \"<|nope|>\"}".utf8).write(to: URL(fileURLWithPath: dir + "/tokenizer_config.json"))
        XCTAssertThrowsError(try BPETokenizer(path: dir + "/tokenizer.json")) {
            XCTAssertTrue("\($0)".contains("tokenizer_config.json: field \"eos_token\" is \"<|nope|>\""), "\($0)")
        }
        // Of another type: eos_token 5 was reported missing, a pad_token 5 became eos silently.
        for (config, field, kind) in [(#"{"eos_token": 5}"#, "eos_token", "a number"), (#"{"eos_token": "<|endoftext|>", "pad_token": 5}"#, "pad_token", "a number"),
                                      (#"{"eos_token": "<|endoftext|>", "bos_token": ["<|endoftext|>"]}"#, "bos_token", "a list")] {
            try Data(config.utf8).write(to: URL(fileURLWithPath: dir + "/tokenizer_config.json"))
            XCTAssertThrowsError(try BPETokenizer(path: dir + "/tokenizer.json")) {
                XCTAssertTrue("\($0)".hasSuffix("tokenizer_config.json: field \"\(field)\" must be a token (a string, or an object with a string \"content\"), got \(kind)"), "\($0)")
            }
        }
    }

    /// Which file names the special tokens, as transformers 5.24 reads them (checked with
    /// `AutoTokenizer.from_pretrained` on these files): special_tokens_map.json over an older
    /// tokenizer_config.json (no added_tokens_decoder), the config over the map otherwise; with
    /// neither, `<|endoftext|>` where the vocabulary has it (GPT-2's and Qwen2's default), said.
    func testSpecialTokensMapAndAMissingConfigAreReadAsTransformersReadsThem() throws {
        let dir = NSTemporaryDirectory() + "special-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func load(_ tokenizer: String, config: String?, map: String?) throws -> BPETokenizer {
            for f in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"] { try? FileManager.default.removeItem(atPath: dir + "/" + f) }
            try FileManager.default.copyItem(atPath: Self.root + "/tokenizers/\(tokenizer)/tokenizer.json", toPath: dir + "/tokenizer.json")
            if let config { try Data(config.utf8).write(to: URL(fileURLWithPath: dir + "/tokenizer_config.json")) }
            if let map { try Data(map.utf8).write(to: URL(fileURLWithPath: dir + "/special_tokens_map.json")) }
            return try BPETokenizer(path: dir + "/tokenizer.json")
        }
        let llama = try load("llama3", config: nil, map: #"{"eos_token": "<|eot_id|>"}"#)
        let ids = llama.specialTokens
        XCTAssertEqual(llama.eosId, ids["<|eot_id|>"])
        XCTAssertNil(llama.eosNote)
        let older = try load("llama3", config: #"{"eos_token": "<|eot_id|>"}"#,
                             map: #"{"eos_token": "<|end_of_text|>", "pad_token": {"content": "<|end_header_id|>", "lstrip": false}}"#)
        XCTAssertEqual(older.eosId, ids["<|end_of_text|>"])
        XCTAssertEqual(older.padId, ids["<|end_header_id|>"])
        let newer = try load("llama3", config: #"{"eos_token": "<|eot_id|>", "added_tokens_decoder": {}}"#, map: #"{"eos_token": "<|end_of_text|>"}"#)
        XCTAssertEqual(newer.eosId, ids["<|eot_id|>"])
        XCTAssertThrowsError(try load("llama3", config: nil, map: #"{"eos_token": "<|nope|>"}"#)) {
            XCTAssertTrue("\($0)".contains("special_tokens_map.json: field \"eos_token\" is \"<|nope|>\""), "\($0)")
        }
        XCTAssertThrowsError(try load("llama3", config: nil, map: nil)) {
            XCTAssertEqual("\($0)", "\(dir) has no tokenizer_config.json and \(dir)/tokenizer.json has no <|endoftext|> token: no end-of-text token to end examples with (add tokenizer_config.json with \"eos_token\")")
        }
        let gpt2 = try load("gpt2", config: nil, map: nil)
        XCTAssertEqual(gpt2.eosId, gpt2.specialTokens["<|endoftext|>"])
        XCTAssertEqual(gpt2.eosNote, "note: no eos_token in \(dir) (no tokenizer_config.json); <|endoftext|> (id \(gpt2.eosId)) ends each example, as transformers' GPT-2 and Qwen2 tokenizers default to")
    }
}
