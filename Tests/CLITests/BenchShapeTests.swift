import Foundation
import XCTest

/// `sft-dist bench --shape NAME` / `--model DIR`: the benchmark trains the public model's
/// architecture. The parameter count is computed here from the public config.json's numbers
/// (HuggingFaceTB/SmolLM2-135M), independently of the Llama layout code; one tiny step
/// (batch 1 × 8 tokens) keeps the test cheap — speed is the benchmark's business.
final class BenchShapeTests: XCTestCase {
    /// Parameters of a Llama-family decoder from its config numbers: embedding, per layer
    /// two RMSNorm weights, q/k/v/o and the three SwiGLU projections (plus q/k/v biases for
    /// Qwen2), the final norm, and an LM head only when it is not tied.
    static func llamaParameters(vocab V: Int, hidden C: Int, intermediate I: Int, layers L: Int, heads H: Int,
                                kvHeads KV: Int, headDim hd: Int, tied: Bool, qkvBias: Bool) -> Int {
        let attention = C * H * hd * 2 + C * KV * hd * 2 + (qkvBias ? H * hd + 2 * KV * hd : 0)
        let perLayer = 2 * C + attention + 3 * C * I
        return V * C + L * perLayer + C + (tied ? 0 : V * C)
    }

    static func benchJSON(_ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let r = CLI.sftDist(["bench", "--threads", "1", "--steps", "1", "--warmup", "0", "--generate-tokens", "0",
                             "--json", "--quiet"] + args, seconds: 120)
        XCTAssertEqual(r.status, 0, r.all, file: file, line: line)
        let text = try XCTUnwrap(r.stdout.split(separator: "\n").last, r.all, file: file, line: line)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], String(text), file: file, line: line)
    }

    func testSmolLM2ShapeHasThePublicModelsParameterCount() throws {
        let j = try Self.benchJSON(["--shape", "smollm2-135m", "--batch-size", "1", "--seq-len", "8"])
        // SmolLM2-135M config.json: hidden 576, intermediate 1536, 30 layers, 9 heads, 3 kv heads,
        // vocab 49152, tied embeddings, no biases.
        let expected = Self.llamaParameters(vocab: 49152, hidden: 576, intermediate: 1536, layers: 30, heads: 9,
                                            kvHeads: 3, headDim: 64, tied: true, qkvBias: false)
        XCTAssertEqual(expected, 134_515_008)   // the published "135M"
        XCTAssertEqual(j["parameters"] as? Int, expected)
        XCTAssertEqual(j["vocab"] as? Int, 49152)
        XCTAssertEqual(j["batch"] as? Int, 1)
        XCTAssertEqual(j["seq_len"] as? Int, 8)
        XCTAssertEqual(j["model"] as? String, "smollm2-135m")
        // Random N(0, 0.02) weights: the first loss is close to log(vocab).
        let loss = try XCTUnwrap(j["first_loss"] as? Double)
        XCTAssertEqual(loss, log(49152.0), accuracy: 0.3)
    }

    /// gpt2-mini's Llama twin (the per-FLOP comparison of the two paths in the README): its
    /// width, depth, heads, vocab and context, and as many MLP weights (3·384·1024 = 2·384·1536).
    func testLlamaMiniIsGPT2MinisShapeInTheLlamaFamily() throws {
        let j = try Self.benchJSON(["--shape", "llama-mini", "--batch-size", "1", "--seq-len", "8"])
        let expected = Self.llamaParameters(vocab: 8192, hidden: 384, intermediate: 1024, layers: 6, heads: 6,
                                            kvHeads: 6, headDim: 64, tied: true, qkvBias: false)
        XCTAssertEqual(3 * 384 * 1024, 2 * 384 * 1536)
        XCTAssertEqual(j["parameters"] as? Int, expected)
        XCTAssertEqual(j["vocab"] as? Int, 8192)
        XCTAssertEqual(j["model"] as? String, "llama-mini")
        XCTAssertEqual(try XCTUnwrap(j["first_loss"] as? Double), log(8192.0), accuracy: 0.3)
        let long = CLI.sftDist(["bench", "--shape", "llama-mini", "--seq-len", "257", "--steps", "1", "--warmup", "0"])
        XCTAssertEqual(long.status, 1, "gpt2-mini's 256 positions: \(long.all)")
    }

    func testModelDirectoryIsBenchmarkedWithItsOwnArchitecture() throws {
        let dir = HFModelCLITests.model("qwen2")
        let c = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/config.json"))) as? [String: Any])
        func int(_ k: String) -> Int { c[k] as! Int }
        let heads = int("num_attention_heads")
        let expected = Self.llamaParameters(vocab: int("vocab_size"), hidden: int("hidden_size"), intermediate: int("intermediate_size"),
                                            layers: int("num_hidden_layers"), heads: heads, kvHeads: int("num_key_value_heads"),
                                            headDim: c["head_dim"] as? Int ?? int("hidden_size") / heads,
                                            tied: c["tie_word_embeddings"] as? Bool ?? false, qkvBias: true)
        let j = try Self.benchJSON(["--model", dir, "--batch-size", "2", "--seq-len", "16"])
        XCTAssertEqual(j["parameters"] as? Int, expected)
        XCTAssertEqual(j["vocab"] as? Int, int("vocab_size"))
        // Its context (64) leaves 48 tokens after the 16-token prompt: the default 64 runs (the
        // note says 48 were generated), a --generate-tokens given above 48 is refused.
        let r = CLI.sftDist(["bench", "--model", dir, "--batch-size", "2", "--seq-len", "16", "--steps", "1", "--warmup", "0", "--quiet"], seconds: 120)
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stdout.contains("48 tokens after a 16-token prompt"), r.stdout)
        let refused = CLI.sftDist(["bench", "--model", dir, "--batch-size", "2", "--seq-len", "16", "--generate-tokens", "49"], seconds: 60)
        XCTAssertEqual(refused.status, 1, refused.all)
        XCTAssertTrue(refused.stderr.contains("--generate-tokens 49: qwen2's context of 64 tokens leaves 48"), refused.all)
    }

    func testUnknownShapeIsOneLineListingTheKnownOnes() {
        let r = CLI.sftDist(["bench", "--shape", "llama-70b"])
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertEqual(r.stdout, "")
        let lines = r.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, r.stderr)
        for name in ["llama-70b", "smollm2-135m", "qwen2.5-0.5b", "--shape"] {
            XCTAssertTrue(r.stderr.contains(name), "\(name) missing from: \(r.stderr)")
        }
    }

    func testSeqLenBeyondTheModelsContextIsRefused() {
        // gpt2-mini's context is 256 positions.
        let r = CLI.sftDist(["bench", "--seq-len", "300", "--steps", "1", "--warmup", "0", "--generate-tokens", "0"])
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertTrue(r.stderr.contains("--seq-len 300"), r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
    }
}
