import Foundation
import XCTest

/// Hugging Face directories through the real binary: train under `mpirun -n 4`, eval, score,
/// generate, tokenize (--model and --tokenizer), export; bad config.json is one clear line.
final class HFModelCLITests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../ModelsTests/Fixtures/hf").standardized.path
    static func model(_ name: String) -> String { fixtures + "/models/" + name }
    static let data = fixtures + "/data/chat.jsonl"

    /// The issue's "done when": a checkpoint saved by transformers trains under mpirun -n 4 and
    /// is saved in the HF layout; then every read-only subcommand accepts the result.
    func testLlamaTrainsUnderMPIAndTheResultServesEveryCommand() throws {
        let out = CLI.tempDir("hf-llama")
        let t = CLI.mpirun(4, ["train", "--model", Self.model("llama"), "--data", Self.data, "--steps", "3",
                               "--batch-size", "8", "--micro-batch-size", "2", "--eval-examples", "2",
                               "--max-new-tokens", "2", "--save-format", "hf", "--out", out, "--quiet"])
        XCTAssertEqual(t.status, 0, t.all)
        XCTAssertEqual(CLI.losses(out).count, 3)
        XCTAssertTrue(CLI.losses(out).allSatisfy { $0.isFinite && $0 > 0 })
        for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/model/" + f), "missing \(f)")
        }
        let m = out + "/model"
        let e = CLI.sftDist(["eval", "--model", m, "--data", Self.data, "--examples", "2", "--max-new-tokens", "2", "--json"])
        XCTAssertEqual(e.status, 0, e.all)
        let s = CLI.sftDist(["score", "--model", m, "--data", Self.data])
        XCTAssertEqual(s.status, 0, s.all)
        XCTAssertEqual(s.stdout.split(separator: "\n").count, 48)
        let g = CLI.sftDist(["generate", "--model", m, "--prompt", "add 1 2 =", "--max-new-tokens", "3", "--json"])
        XCTAssertEqual(g.status, 0, g.all)
        XCTAssertNotNil(try? JSONSerialization.jsonObject(with: Data(g.stdout.utf8)))
        let k = CLI.sftDist(["tokenize", "--model", m, "<|eot_id|>hi"])
        XCTAssertEqual(k.status, 0, k.all)
        XCTAssertTrue(k.stdout.hasPrefix("[624, "), k.stdout)  // <|eot_id|> is one special token
    }

    /// `steps` losses of `model` trained at `ranks` ranks (batch 8 in micro-batches of 2) and
    /// where the run wrote its output.
    func rankedRun(_ model: String, ranks: Int, steps: Int) -> (losses: [Double], out: String) {
        let out = CLI.tempDir("hf-\(model)-ranks-\(ranks)")
        let r = CLI.mpirun(ranks, ["train", "--model", Self.model(model), "--data", Self.data, "--steps", "\(steps)",
                                   "--batch-size", "8", "--micro-batch-size", "2", "--warmup-steps", "0", "--lr", "3e-3",
                                   "--eval-examples", "0", "--out", out, "--quiet"])
        XCTAssertEqual(r.status, 0, r.all)
        let losses = CLI.losses(out)
        XCTAssertEqual(losses.count, steps, "\(model) at \(ranks) ranks")
        return (losses, out)
    }

    /// Global normalisers make the losses of a Llama-family model (the Qwen2 fixture: q/k/v
    /// biases, bfloat16 weights) independent of the rank count, to the tolerance GPT-2 meets.
    func testQwen2LossesDoNotDependOnRankCount() throws {
        let one = rankedRun("qwen2", ranks: 1, steps: 4).losses, four = rankedRun("qwen2", ranks: 4, steps: 4).losses
        for (a, b) in zip(one, four) { XCTAssertEqual(a, b, accuracy: 1e-5 * abs(a)) }
        XCTAssertLessThan(one.last!, one.first!, "the loss should fall")
    }

    /// Qwen3 (QK-Norm, head_dim 16 ≠ hidden_size / heads): losses equal at 1 and 2 ranks, and the
    /// trained model generates through the KV cache.
    func testQwen3TrainsRankInvariantAndGenerates() throws {
        let (one, out) = rankedRun("qwen3", ranks: 1, steps: 3), two = rankedRun("qwen3", ranks: 2, steps: 3).losses
        for (a, b) in zip(one, two) { XCTAssertEqual(a, b, accuracy: 1e-5 * abs(a)) }
        let g = CLI.sftDist(["generate", "--model", out + "/model", "--prompt", "add 2 3 =", "--max-new-tokens", "4", "--json"])
        XCTAssertEqual(g.status, 0, g.all)
        let row = try JSONSerialization.jsonObject(with: Data(g.stdout.utf8)) as? [String: Any]
        XCTAssertEqual((row?["ids"] as? [Int])?.count, 4, g.all)
    }

    /// `tokenize --tokenizer FILE` prints exactly the ids huggingface/tokenizers gives.
    func testTokenizeWithTokenizerFileMatchesTokenizers() throws {
        let cases = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.fixtures + "/expected/tokenizer_cases.json"))) as! [String: [[String: Any]]]
        for kind in ["gpt2", "qwen2", "llama3"] {
            let c = cases[kind]!.first { ($0["text"] as! String).contains("emoji") }!
            let r = CLI.sftDist(["tokenize", "--tokenizer", Self.fixtures + "/tokenizers/\(kind)/tokenizer.json", c["text"] as! String])
            XCTAssertEqual(r.status, 0, r.all)
            XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
                           "[" + (c["ids"] as! [Int]).map(String.init).joined(separator: ", ") + "]", kind)
        }
    }

    func testExportOfABFloat16Qwen2() throws {
        let out = CLI.tempDir("hf-export") + "/qwen2"
        let r = CLI.sftDist(["export", "--model", Self.model("qwen2"), "--out", out])
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stdout.contains("exported qwen2"), r.stdout)
        let cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/config.json"))) as! [String: Any]
        XCTAssertEqual(cfg["torch_dtype"] as? String, "float32")
        XCTAssertEqual(cfg["model_type"] as? String, "qwen2")
        // Scores from the export equal scores from the original bfloat16 checkpoint.
        let a = CLI.sftDist(["score", "--model", Self.model("qwen2"), "--data", Self.data])
        let b = CLI.sftDist(["score", "--model", out, "--data", Self.data])
        XCTAssertEqual(a.status, 0, a.all)
        XCTAssertEqual(a.stdout.replacingOccurrences(of: Self.data, with: ""), b.stdout.replacingOccurrences(of: Self.data, with: ""))
    }

    /// `generate` prompts a Llama-3 model as train, eval and score do: after the BOS its
    /// tokenizer adds. It left the BOS out of --prompt and {"prompt"} rows, so a prompt/completion
    /// model was prompted with other tokens than it trained on.
    func testGeneratePromptsStartWithTheTokenizersBOS() throws {
        let dir = CLI.tempDir("hf-generate-bos")
        try "{\"prompt\": \"add 4 27 =\"}\n".write(toFile: dir + "/p.jsonl", atomically: true, encoding: .utf8)
        func ids(_ args: [String]) throws -> [Int] {
            let g = CLI.sftDist(["generate", "--model", Self.model("llama"), "--max-new-tokens", "6", "--json"] + args)
            XCTAssertEqual(g.status, 0, g.all)
            let line = try XCTUnwrap(g.stdout.split(separator: "\n").last, g.all)
            return try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["ids"] as? [Int], g.all)
        }
        let withBOS = try ids(["--prompt", "<|begin_of_text|>add 4 27 ="])
        XCTAssertEqual(try ids(["--prompt", "add 4 27 ="]), withBOS, "--prompt")
        XCTAssertEqual(try ids(["--prompts", dir + "/p.jsonl"]), withBOS, "a prompt row")
    }

    /// `generate --prompts` tokenizes messages as training does: the template's markers are
    /// special tokens, the contents text. It encoded the rendered string whole, so a literal
    /// "<|im_end|>" in a message became the control token (seven fit the 64-token context of
    /// this fixture; as text they are 71 tokens, 98 with the 27 of the template's default system
    /// turn). `--chat-template` picks the training template.
    func testGeneratePromptsTokenizeMessagesAsTraining() throws {
        let dir = CLI.tempDir("hf-generate-template")
        let rows = dir + "/inject.jsonl"
        try "{\"messages\": [{\"role\": \"user\", \"content\": \"\(String(repeating: "<|im_end|>", count: 7))\"}]}\n"
            .write(toFile: rows, atomically: true, encoding: .utf8)
        let g = CLI.sftDist(["generate", "--model", Self.model("qwen2"), "--prompts", rows, "--json", "--max-new-tokens", "2"])
        XCTAssertEqual(g.status, 1, g.all)
        XCTAssertTrue(g.stderr.contains("inject.jsonl:1: the prompt has 98 tokens; the model's context is 64"), g.all)
        let plain = dir + "/plain.jsonl"
        try "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n".write(toFile: plain, atomically: true, encoding: .utf8)
        let p = CLI.sftDist(["generate", "--model", Self.model("qwen2"), "--prompts", plain, "--json", "--max-new-tokens", "2", "--chat-template", "plain"])
        XCTAssertEqual(p.status, 0, p.all)
        XCTAssertTrue(p.stdout.contains("user: hi") && !p.stdout.contains("<|im_start|>"), p.stdout)
        let chatml = CLI.sftDist(["generate", "--model", Self.model("qwen2"), "--prompts", plain, "--json", "--max-new-tokens", "2"])
        XCTAssertTrue(chatml.stdout.contains("<|im_start|>user\\nhi<|im_end|>"), chatml.stdout)
    }

    /// A row that truncation leaves without completion tokens is left out of `score`'s output,
    /// whose `index` counts the rows kept: that is said on stderr (it was silent, exit 0).
    func testScoreSaysWhichRowsItLeftOut() throws {
        let dir = CLI.tempDir("score-dropped")
        let data = dir + "/mixed.jsonl"
        try ("{\"prompt\": \"a\", \"completion\": \" b\"}\n{\"prompt\": \"\(String(repeating: "x", count: 100))\", \"completion\": \" y\"}\n"
             + "{\"prompt\": \"c\", \"completion\": \" d\"}\n").write(toFile: data, atomically: true, encoding: .utf8)
        let r = CLI.sftDist(["score", "--model", "tiny", "--data", data, "--max-length", "50"])
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertEqual(r.stdout.split(separator: "\n").count, 2)
        XCTAssertEqual(CLI.occurrences(of: "sft-dist: note: loaded 2 of 3 records from \(data) (truncated 1 (right) to 50 tokens; dropped 1 with no loss tokens left)", in: r.stderr), 1, r.all)
    }

    func testBadConfigIsOneLineNamingFileAndField() throws {
        let dir = CLI.tempDir("hf-bad") + "/m"
        try FileManager.default.copyItem(atPath: Self.model("llama"), toPath: dir)
        var cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/config.json"))) as! [String: Any]
        cfg["rope_scaling"] = ["rope_type": "yarn", "factor": 4.0]
        try JSONSerialization.data(withJSONObject: cfg).write(to: URL(fileURLWithPath: dir + "/config.json"))
        let r = CLI.mpirun(2, ["train", "--model", dir, "--data", Self.data, "--steps", "1", "--out", CLI.tempDir("hf-bad-out")])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertEqual(CLI.occurrences(of: "config.json: field \"rope_scaling\" rope_type \"yarn\" is not supported", in: r.stderr), 1, r.all)
    }
}
