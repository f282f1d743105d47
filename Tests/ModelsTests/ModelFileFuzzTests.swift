import Foundation
import XCTest
import TensorCore
@testable import Models

/// Seeded mutations of config.json and tokenizer.json, byte-level (bit flips, tokens that
/// break JSON, truncation) and field-level (absurd numbers, wrong types, unknown kinds): every
/// case must load or throw one line naming the file, never trap, never allocate the absurd.
/// 2000 cases each by default; more with SFT_DIST_FUZZ_CASES (seed: SFT_DIST_FUZZ_SEED).
final class ModelFileFuzzTests: XCTestCase {
    static var cases: Int { ProcessInfo.processInfo.environment["SFT_DIST_FUZZ_CASES"].flatMap { Int($0) } ?? 2000 }
    static func rng(_ salt: UInt64) -> SplitMix64 {
        SplitMix64(seed: (ProcessInfo.processInfo.environment["SFT_DIST_FUZZ_SEED"].flatMap { UInt64($0) } ?? 0xC0_F1_6) ^ salt)
    }

    static let interestingValues: [Any] = [
        0, -1, 1, 2, 3, 7, 64, 1 << 31, 1 << 40, 1 << 62, 999_999_999_999_999, 1_000_000_000, 1e300, 0.5, -0.0, 1e-30,
        "", "x", "gpt2", "llama", "BPE", "ByteLevel", "NFC", "Split", true, false, NSNull(), [Any](), [String: Any](),
        ["rope_type": "linear", "factor": 2.0], ["type": "Sequence"], [1, 2], ["a", "b"], ["a b"],
    ]
    static let interestingBytes: [[UInt8]] = [
        [0x22], [0x5C], [0x7B], [0x7D], [0x5B], [0x5D], [0x3A], [0x2C], [0x00], [0xFF], [0xC3], [0xED, 0xA0, 0x80],
        Array("NaN".utf8), Array("-Infinity".utf8), Array("1e999".utf8), Array("null".utf8), Array("18446744073709551616".utf8),
        Array(#"\u"#.utf8), Array(#"\ud800"#.utf8), [UInt8](repeating: 0x5B, count: 600),
    ]

    static func mutateBytes(_ b: inout [UInt8], _ rng: inout SplitMix64) {
        func at(_ extra: Int = 0) -> Int { Int.random(in: 0...max(0, b.count - 1 + extra), using: &rng) }
        switch Int.random(in: 0..<5, using: &rng) {
        case 0:
            guard !b.isEmpty else { return }
            for _ in 0..<Int.random(in: 1...4, using: &rng) { b[at()] ^= 1 << UInt8.random(in: 0..<8, using: &rng) }
        case 1: b.insert(contentsOf: interestingBytes.randomElement(using: &rng)!, at: min(at(1), b.count))
        case 2:
            guard !b.isEmpty else { return }
            let s = at()
            b.removeSubrange(s..<min(b.count, s + Int.random(in: 1...16, using: &rng)))
        case 3: b = Array(b.prefix(at()))
        default:  // replace a digit run with an extreme number
            guard let s = b.indices.filter({ (48...57).contains(b[$0]) }).randomElement(using: &rng) else { return }
            var e = s
            while e < b.count && (48...57).contains(b[e]) { e += 1 }
            let numbers = ["1099511627776", "1000000000", "0", "-3", "999999999999999", "4.5", "1e15", "9223372036854775807"]
            b.replaceSubrange(s..<e, with: Array(numbers.randomElement(using: &rng)!.utf8))
        }
    }

    /// Sets `path` (keys; an Int picks an array element) inside a JSON object to `value`.
    static func set(_ object: Any, _ path: ArraySlice<String>, _ value: Any) -> Any {
        guard let key = path.first else { return value }
        if var dict = object as? [String: Any] {
            dict[key] = set(dict[key] ?? [String: Any](), path.dropFirst(), value)
            return dict
        }
        if var array = object as? [Any], let i = Int(key), array.indices.contains(i) {
            array[i] = set(array[i], path.dropFirst(), value)
            return array
        }
        return object
    }

    static func checkMessage(_ error: Error, path: String, _ label: String) {
        let s = "\(error)"
        XCTAssertTrue(error is ModelError, "\(label): \(type(of: error)): \(s)")
        XCTAssertTrue(s.hasPrefix(path), "\(label): \(s)")
        XCTAssertFalse(s.contains("\n"), "\(label): \(s)")
        XCTAssertLessThan(s.count, 300, "\(label): \(s)")
    }

    // MARK: config.json

    func testFuzzedConfigJSONLoadsOrFailsButNeverCrashes() throws {
        var rng = Self.rng(1)
        let bases = try ["gpt2", "llama", "qwen2", "qwen3", "mistral-sharded"].map {
            try Data(contentsOf: URL(fileURLWithPath: HFModelTests.model($0) + "/config.json"))
        }
        let keys = ["n_embd", "n_layer", "n_head", "n_positions", "vocab_size", "n_inner", "layer_norm_epsilon", "model_type",
                    "activation_function", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                    "num_key_value_heads", "head_dim", "max_position_embeddings", "rms_norm_eps", "rope_theta", "rope_scaling",
                    "rope_parameters", "tie_word_embeddings", "sliding_window", "use_sliding_window", "attention_bias", "mlp_bias"]
        let budget = 1 << 22  // bytes: small models are built, to prove the layout matches the plan
        var loaded = 0, rejected = 0, built = 0
        for i in 0..<Self.cases {
            let label = "config case \(i)"
            var data = bases[i % bases.count]
            if Bool.random(using: &rng), var object = try JSONSerialization.jsonObject(with: data) as? [String: Any] {
                for _ in 0...Int.random(in: 0...2, using: &rng) {
                    object[keys.randomElement(using: &rng)!] = Self.interestingValues.randomElement(using: &rng)!
                }
                data = try JSONSerialization.data(withJSONObject: object)
            } else {
                var b = [UInt8](data)
                for _ in 0...Int.random(in: 0...2, using: &rng) { Self.mutateBytes(&b, &rng) }
                data = Data(b)
            }
            do {
                let json = try JSONObjectFile.parse(data, path: "config.json")
                let arch = try ModelDirectory.architecture(json, path: "config.json")
                try ModelMemoryCheck.check(arch.plan, path: "config.json", available: budget)
                let model = arch.build(nil)
                XCTAssertEqual(model.parameters.count, arch.plan.storeFloats, label)
                XCTAssertEqual(model.vocabSize, arch.vocabSize, label)
                built += 1
                loaded += 1
            } catch {
                Self.checkMessage(error, path: "config.json: ", label)
                rejected += 1
            }
        }
        if Self.cases >= 500 {
            XCTAssertGreaterThan(built, Self.cases / 50, "too few mutated configs still load")
            XCTAssertGreaterThan(rejected, Self.cases / 4, "too few mutated configs are rejected")
        }
        print("config.json fuzz: \(Self.cases) cases, \(loaded) loaded, \(rejected) rejected")
    }

    // MARK: tokenizer.json

    /// A fixture tokenizer cut down to the byte tokens and its first 40 merges, so a case
    /// parses in well under a millisecond.
    static func smallTokenizer(_ kind: String) throws -> [String: Any] {
        var t = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: BPETokenizerTests.root + "/tokenizers/\(kind)/tokenizer.json"))) as! [String: Any]
        var model = t["model"] as! [String: Any]
        let vocab = model["vocab"] as! [String: Any]
        let merges = Array((model["merges"] as! [Any]).prefix(40))
        var keep = Set(ByteLevel.characters.map { String($0) })
        for m in merges {
            let pair = (m as? String).map { $0.split(separator: " ").map(String.init) } ?? (m as! [String])
            keep.insert(pair.joined())
        }
        model["vocab"] = vocab.filter { keep.contains($0.key) }
        model["merges"] = merges
        t["model"] = model
        return t
    }

    func testFuzzedTokenizerJSONLoadsOrFailsButNeverCrashes() throws {
        var rng = Self.rng(2)
        let bases = try ["gpt2", "qwen2", "llama3"].map { try Self.smallTokenizer($0) }
        let baseBytes = try bases.map { [UInt8](try JSONSerialization.data(withJSONObject: $0)) }
        let configs = ["gpt2", "qwen2", "llama3"].map {
            FileManager.default.contents(atPath: BPETokenizerTests.root + "/tokenizers/\($0)/tokenizer_config.json")
        }
        let paths: [[String]] = [
            ["model", "type"], ["model", "dropout"], ["model", "unk_token"], ["model", "ignore_merges"], ["model", "byte_fallback"],
            ["model", "vocab"], ["model", "merges"], ["model", "merges", "0"], ["model", "merges", "3"], ["model", "vocab", "Ġ"],
            ["model", "vocab", "a"], ["model", "continuing_subword_prefix"], ["added_tokens"], ["added_tokens", "0"],
            ["added_tokens", "0", "id"], ["added_tokens", "0", "content"], ["added_tokens", "0", "normalized"],
            ["added_tokens", "1", "lstrip"], ["normalizer"], ["normalizer", "type"], ["pre_tokenizer"], ["pre_tokenizer", "type"],
            ["pre_tokenizer", "add_prefix_space"], ["pre_tokenizer", "pretokenizers", "0", "pattern", "Regex"],
            ["pre_tokenizer", "pretokenizers", "1", "use_regex"], ["decoder"], ["decoder", "type"], ["post_processor"],
        ]
        let texts = ["hello world", "  the  quick\n\nbrown 123456 fox's", "<|endoftext|>x<|im_start|>", "é日本🙂\u{0}\t\r\n",
                     "<|begin_of_text|><|eot_id|>", String(repeating: "ab", count: 40), ""]
        var loaded = 0, rejected = 0
        let dir = FileManager.default.temporaryDirectory.path
        for i in 0..<Self.cases {
            let label = "tokenizer case \(i)"
            var bytes = baseBytes[i % bases.count]
            if Bool.random(using: &rng) {
                var object: Any = bases[i % bases.count]
                for _ in 0...Int.random(in: 0...2, using: &rng) {
                    object = Self.set(object, paths.randomElement(using: &rng)![...], Self.interestingValues.randomElement(using: &rng)!)
                }
                bytes = [UInt8](try JSONSerialization.data(withJSONObject: object))
            } else {
                for _ in 0...Int.random(in: 0...2, using: &rng) { Self.mutateBytes(&bytes, &rng) }
            }
            do {
                var files = ["tokenizer.json": Data(bytes)]
                files["tokenizer_config.json"] = configs[i % bases.count]
                let tok = try BPETokenizer(path: dir + "/tokenizer.json", files: files)
                for t in texts.shuffled(using: &rng).prefix(3) {
                    for ids in [tok.encode(t), tok.encodePlain(t)] {
                        XCTAssertTrue(ids.allSatisfy { $0 >= 0 && Int($0) < tok.vocabSize }, label)
                        _ = tok.decode(ids)
                    }
                }
                loaded += 1
            } catch {
                Self.checkMessage(error, path: dir + "/tokenizer", label)
                rejected += 1
            }
        }
        if Self.cases >= 500 {
            XCTAssertGreaterThan(loaded, Self.cases / 20, "too few mutated tokenizers still load")
            XCTAssertGreaterThan(rejected, Self.cases / 4, "too few mutated tokenizers are rejected")
        }
        print("tokenizer.json fuzz: \(Self.cases) cases, \(loaded) loaded, \(rejected) rejected")
    }
}
