import Foundation
import XCTest

/// `train` on `messages` saves the chat template it trained with in OUT/model's tokenizer
/// (and checkpoints'), and leaves the tokenizer's files as they were otherwise.
final class ChatTemplateSaveTests: XCTestCase {
    static let models = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../ModelsTests/Fixtures/hf/models").standardized.path

    func chatTemplate(_ dir: String) -> String? {
        guard let d = FileManager.default.contents(atPath: dir + "/tokenizer_config.json"),
              let json = try? JSONSerialization.jsonObject(with: d) as? [String: Any] else { return nil }
        return json["chat_template"] as? String
    }

    func testTrainingOnMessagesRecordsTheTemplate() throws {
        let dir = CLI.tempDir("chat-template-save")
        try FileManager.default.copyItem(atPath: Self.models + "/qwen2", toPath: dir + "/qwen2")
        try FileManager.default.removeItem(atPath: dir + "/qwen2/chat_template.jinja")
        let row = #"{"messages": [{"role": "user", "content": "add 2 3 ="}, {"role": "assistant", "content": " 5"}]}"#
        try (String(repeating: row + "\n", count: 12)).write(toFile: dir + "/chat.jsonl", atomically: true, encoding: .utf8)
        let t = CLI.sftDist(["train", "--model", "qwen2", "--data", "chat.jsonl", "--steps", "2", "--save-every", "1",
                             "--eval-examples", "0", "--out", "run"], cwd: dir)
        XCTAssertEqual(t.status, 0, t.all)
        XCTAssertEqual(CLI.occurrences(of: "chat template: the saved tokenizer records chatml, the template the messages are trained with (it had none)", in: t.all), 1, t.all)
        let template = try XCTUnwrap(chatTemplate(dir + "/run/model"), "OUT/model has no chat_template")
        XCTAssertTrue(template.contains("<|im_start|>") && template.contains("add_generation_prompt"), template)
        XCTAssertEqual(chatTemplate(dir + "/run/checkpoints/step-000002/model"), template)
        // The saved model, read back with --chat-template auto, is recognised as ChatML.
        let again = CLI.sftDist(["train", "--model", "run/model", "--data", "chat.jsonl", "--steps", "1", "--eval-examples", "0", "--out", "run2"], cwd: dir)
        XCTAssertEqual(again.status, 0, again.all)
        XCTAssertTrue(again.all.contains("chat template: chatml (recognised in the tokenizer's chat_template)"), again.all)
        XCTAssertFalse(again.all.contains("the saved tokenizer records"), again.all)

        // Prompt/completion data uses no template: the tokenizer's files are written back as read.
        let pc = CLI.sftDist(["train", "--model", "qwen2", "--steps", "1", "--eval-examples", "0", "--out", "run3"], cwd: dir)
        XCTAssertEqual(pc.status, 0, pc.all)
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/run3/model/tokenizer_config.json"),
                       FileManager.default.contents(atPath: dir + "/qwen2/tokenizer_config.json"))
    }

    /// The Qwen2 fixture's own template puts "You are a helpful assistant." before a conversation
    /// without a system message; training lays the data out with it (the longest example is the
    /// system turn's tokens longer than with `--chat-template chatml`) and keeps the template,
    /// while `--chat-template chatml` records plain ChatML in its place, saying why.
    /// sft-dist's byte tokenizer (a preset model) records a template other than its own ChatML
    /// too: in sft_dist_tokenizer.json, the exported tokenizer_config.json and beside a LoRA
    /// adapter, so `score` (auto) lays conversations out as the model learned them. It saved
    /// ChatML whatever the run trained with, and the adapter had no tokenizer at all.
    func testThePresetsByteTokenizerRecordsAPlainTemplate() throws {
        let dir = CLI.tempDir("chat-template-byte")
        let row = #"{"messages": [{"role": "user", "content": "add 2 3 ="}, {"role": "assistant", "content": " 5"}]}"#
        try (String(repeating: row + "\n", count: 12)).write(toFile: dir + "/chat.jsonl", atomically: true, encoding: .utf8)
        let base = ["train", "--model", "tiny", "--data", "chat.jsonl", "--heldout", "chat.jsonl", "--chat-template", "plain",
                    "--steps", "2", "--eval-examples", "0"]
        let t = CLI.sftDist(base + ["--save-format", "hf", "--out", "full"], cwd: dir)
        XCTAssertEqual(t.status, 0, t.all)
        XCTAssertEqual(CLI.occurrences(of: "chat template: the saved tokenizer records plain, the template the messages are trained with (replacing ChatML, sft-dist's byte tokenizer's own)", in: t.all), 1, t.all)
        let template = try XCTUnwrap(chatTemplate(dir + "/full/model"))
        XCTAssertTrue(template.hasPrefix("{% for message in messages %}{{ message['role'] + ': '"), template)
        let lora = CLI.sftDist(base + ["--lora-rank", "2", "--out", "lora"], cwd: dir)
        XCTAssertEqual(lora.status, 0, lora.all)
        // "user: add 2 3 =\n" as bytes, where ChatML would start with <|im_start|> (257).
        let plainIds = Array("user: add 2 3 =\n".utf8).map(Int.init)
        for model in [["--model", "full/model"], ["--model", "lora/model-base", "--adapter", "lora/model"]] {
            let r = CLI.sftDist(["score", "--data", "chat.jsonl"] + model, cwd: dir)
            XCTAssertEqual(r.status, 0, r.all)
            let first = try XCTUnwrap(r.stdout.split(separator: "\n").first)
            let ids = try XCTUnwrap((JSONSerialization.jsonObject(with: Data(first.utf8)) as? [String: Any])?["ids"] as? [Int])
            XCTAssertEqual(Array(ids.prefix(plainIds.count)), plainIds, "\(model)")
        }
        // A preset trained on messages in ChatML, its own layout, records nothing.
        let own = CLI.sftDist(["train", "--model", "tiny", "--data", "chat.jsonl", "--heldout", "chat.jsonl", "--steps", "1",
                               "--eval-examples", "0", "--out", "own"], cwd: dir)
        XCTAssertEqual(own.status, 0, own.all)
        XCTAssertFalse(own.all.contains("the saved tokenizer records"), own.all)
    }

    /// score, eval, select and generate say which template laid out {messages} rows under
    /// `auto` (a template they did not recognise fell back to plain without a word); nothing for
    /// prompt/completion rows or a template named by the flag.
    func testScoreEvalAndGenerateNameTheTemplateTheyChose() throws {
        let dir = CLI.tempDir("chat-template-note")
        try FileManager.default.copyItem(atPath: Self.models + "/qwen2", toPath: dir + "/m")
        try "{% for m in messages %}{{ m['content'] }}{% endfor %}".write(toFile: dir + "/m/chat_template.jinja", atomically: true, encoding: .utf8)
        let chat = #"{"messages": [{"role": "user", "content": "add 2 3 ="}, {"role": "assistant", "content": " 5"}]}"#
        try (chat + "\n").write(toFile: dir + "/chat.jsonl", atomically: true, encoding: .utf8)
        try #"{"prompt": "add 2 3 =", "completion": " 5"}"#.appending("\n").write(toFile: dir + "/pc.jsonl", atomically: true, encoding: .utf8)
        let note = "sft-dist: note: chat template: plain (the tokenizer's chat_template is not chatml or llama3; pass --chat-template to choose)\n"
        for args in [["score", "--model", "m", "--data", "chat.jsonl"], ["eval", "--model", "m", "--data", "chat.jsonl", "--examples", "1"],
                     ["select", "--model", "m", "--data", "chat.jsonl", "--method", "loss", "--keep", "1", "--out", "kept.jsonl"],
                     ["generate", "--model", "m", "--prompts", "chat.jsonl", "--max-new-tokens", "2"]] {
            let r = CLI.sftDist(args, cwd: dir)
            XCTAssertEqual(r.status, 0, r.all)
            XCTAssertEqual(CLI.occurrences(of: note, in: r.stderr), 1, "\(args): \(r.stderr)")
        }
        for args in [["score", "--model", "m", "--data", "pc.jsonl"], ["score", "--model", "m", "--data", "chat.jsonl", "--chat-template", "chatml"]] {
            let r = CLI.sftDist(args, cwd: dir)
            XCTAssertEqual(r.status, 0, r.all)
            XCTAssertFalse(r.stderr.contains("chat template"), "\(args): \(r.stderr)")
        }
    }

    func testTheModelsDefaultSystemMessageIsTrainedWith() throws {
        let dir = CLI.tempDir("chat-template-default-system")
        try FileManager.default.copyItem(atPath: Self.models + "/qwen2", toPath: dir + "/qwen2")
        let row = #"{"messages": [{"role": "user", "content": "add 2 3 ="}, {"role": "assistant", "content": " 5"}]}"#
        try (String(repeating: row + "\n", count: 12)).write(toFile: dir + "/chat.jsonl", atomically: true, encoding: .utf8)
        func longest(_ out: String) -> Int? {
            guard let r = out.range(of: "the longest has ") else { return nil }
            return Int(out[r.upperBound...].prefix { $0.isNumber })
        }
        let auto = CLI.sftDist(["train", "--model", "qwen2", "--data", "chat.jsonl", "--steps", "1", "--eval-examples", "0",
                                "--max-length", "16", "--truncation", "left", "--out", "auto"], cwd: dir)
        XCTAssertEqual(auto.status, 0, auto.all)
        XCTAssertEqual(CLI.occurrences(of: #"chat template: chatml (recognised in the tokenizer's chat_template, with its default system message "You are a helpful assistant." for conversations without one)"#, in: auto.all), 1, auto.all)
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/auto/model/chat_template.jinja"),
                       FileManager.default.contents(atPath: dir + "/qwen2/chat_template.jinja"), "the model's own template is kept")
        let plain = CLI.sftDist(["train", "--model", "qwen2", "--data", "chat.jsonl", "--steps", "1", "--eval-examples", "0",
                                 "--max-length", "16", "--truncation", "left", "--chat-template", "chatml", "--out", "plain"], cwd: dir)
        XCTAssertEqual(plain.status, 0, plain.all)
        XCTAssertTrue(plain.all.contains("the saved tokenizer records chatml, the template the messages are trained with (replacing its own, which puts a default system message first)"), plain.all)
        XCTAssertNil(FileManager.default.contents(atPath: dir + "/plain/model/chat_template.jinja"))
        // "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n" is 27 of this tokenizer's
        // ids (Fixtures/hf/expected/chat-templates.json: transformers' qwen2 against plain chatml).
        let a = try XCTUnwrap(longest(auto.stdout), auto.all), p = try XCTUnwrap(longest(plain.stdout), plain.all)
        XCTAssertEqual(a, p + 27, "the system turn is in the training examples")
    }

    /// Llama 3.1's template adds its dated system turn to every conversation: the log says so
    /// before the data is read, so a run whose examples it pushes past the context (this
    /// fixture's 64 tokens) shows why they are longer than their messages.
    func testTheLlamaHeaderIsNamedBeforeTheDataIsRead() throws {
        let dir = CLI.tempDir("chat-template-llama-header")
        try FileManager.default.copyItem(atPath: Self.models + "/llama", toPath: dir + "/llama")
        let fixture = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.models + "/../expected/chat-templates.json"))) as! [String: Any]
        let template = try XCTUnwrap((fixture["templates"] as? [String: String])?["llama3.1"])
        try template.write(toFile: dir + "/llama/chat_template.jinja", atomically: true, encoding: .utf8)
        let row = #"{"messages": [{"role": "user", "content": "add 2 3 ="}, {"role": "assistant", "content": " 5"}]}"#
        try (String(repeating: row + "\n", count: 12)).write(toFile: dir + "/chat.jsonl", atomically: true, encoding: .utf8)
        let t = CLI.sftDist(["train", "--model", "llama", "--data", "chat.jsonl", "--steps", "1", "--eval-examples", "0", "--out", "run"], cwd: dir)
        XCTAssertEqual(t.status, 1, t.all)
        XCTAssertTrue(t.all.contains(#"chat template: llama3 (recognised in the tokenizer's chat_template, with its system turn's header "Cutting Knowledge Date: December 2023", "Today Date: 26 Jul 2024")"#), t.all)
        XCTAssertTrue(t.stderr.contains("no examples left"), t.all)
    }

    /// A copy of the Qwen2 fixture without a chat template, and 12 `messages` rows.
    func qwenWithoutTemplate(_ name: String) throws -> String {
        let dir = CLI.tempDir(name)
        try FileManager.default.copyItem(atPath: Self.models + "/qwen2", toPath: dir + "/qwen2")
        try FileManager.default.removeItem(atPath: dir + "/qwen2/chat_template.jinja")
        let row = #"{"messages": [{"role": "user", "content": "add 2 3 ="}, {"role": "assistant", "content": " 5"}]}"#
        try (String(repeating: row + "\n", count: 12)).write(toFile: dir + "/chat.jsonl", atomically: true, encoding: .utf8)
        return dir
    }

    /// WiSE-FT of a base and its fine-tune: the fine-tune records its template, which is not a
    /// tokenizer difference; the merged model keeps the first template given, and says so.
    func testMergingABaseWithItsChatFineTuneWorks() throws {
        let dir = try qwenWithoutTemplate("chat-template-merge")
        let t = CLI.sftDist(["train", "--model", "qwen2", "--data", "chat.jsonl", "--steps", "1", "--eval-examples", "0", "--quiet", "--out", "ft"], cwd: dir)
        XCTAssertEqual(t.status, 0, t.all)
        let m = CLI.sftDist(["merge", "qwen2", "ft/model", "--weights", "0.5,0.5", "--out", "wise"], cwd: dir)
        XCTAssertEqual(m.status, 0, m.all)
        XCTAssertTrue(m.stdout.contains("note: the models' chat templates differ; the merged tokenizer has ft/model's"), m.all)
        XCTAssertEqual(chatTemplate(dir + "/wise"), chatTemplate(dir + "/ft/model"))
    }

    func testDPOOnMessagePairsRecordsTheTemplate() throws {
        let dir = try qwenWithoutTemplate("chat-template-dpo")
        let pair = #"{"messages": [{"role": "user", "content": "add 2 3 ="}], "chosen": [{"role": "assistant", "content": " 5"}], "rejected": [{"role": "assistant", "content": " 6"}]}"#
        try String(repeating: pair + "\n", count: 8).write(toFile: dir + "/pairs.jsonl", atomically: true, encoding: .utf8)
        let t = CLI.sftDist(["train", "--model", "qwen2", "--objective", "dpo", "--data", "pairs.jsonl", "--steps", "1", "--batch-size", "2",
                             "--eval-examples", "0", "--out", "dpo"], cwd: dir)
        XCTAssertEqual(t.status, 0, t.all)
        XCTAssertTrue(t.all.contains("the saved tokenizer records chatml"), t.all)
        XCTAssertNotNil(chatTemplate(dir + "/dpo/model"))
    }

    /// A LoRA run's adapter directory carries the tokenizer (as TRL's trainer saves it), so
    /// `--adapter DIR` and `merge-lora` use the template it trained with.
    func testALoRAAdapterCarriesTheTokenizerItTrainedWith() throws {
        let dir = CLI.tempDir("chat-template-lora")
        try FileManager.default.copyItem(atPath: Self.models + "/llama", toPath: dir + "/llama")
        let row = #"{"messages": [{"role": "user", "content": "add 2 3 ="}, {"role": "assistant", "content": " 5"}]}"#
        try (String(repeating: row + "\n", count: 12)).write(toFile: dir + "/chat.jsonl", atomically: true, encoding: .utf8)
        try (row + "\n").write(toFile: dir + "/ask.jsonl", atomically: true, encoding: .utf8)
        let t = CLI.sftDist(["train", "--model", "llama", "--chat-template", "plain", "--lora-rank", "2", "--data", "chat.jsonl", "--steps", "1",
                             "--eval-examples", "0", "--quiet", "--out", "run"], cwd: dir)
        XCTAssertEqual(t.status, 0, t.all)
        let plain = try XCTUnwrap(chatTemplate(dir + "/run/model"), "the adapter directory has no tokenizer_config.json chat_template")
        XCTAssertTrue(plain.contains("'assistant: '"), plain)
        // generate --adapter with auto lays the prompt out as plain ("user: …\nassistant: "), not llama3.
        let g = CLI.sftDist(["generate", "--model", "llama", "--adapter", "run/model", "--prompts", "ask.jsonl", "--json", "--max-new-tokens", "1"], cwd: dir)
        XCTAssertEqual(g.status, 0, g.all)
        XCTAssertTrue(g.stdout.contains(#""prompt": "user: add 2 3 =\nassistant: ""#), g.all)
        let merged = CLI.sftDist(["merge-lora", "--model", "llama", "--adapter", "run/model", "--out", "merged"], cwd: dir)
        XCTAssertEqual(merged.status, 0, merged.all)
        XCTAssertEqual(chatTemplate(dir + "/merged"), plain)
        // Another model's tokenizer beside the adapter is refused, naming the difference.
        try FileManager.default.copyItem(atPath: dir + "/run/model", toPath: dir + "/other")
        for f in ["tokenizer.json", "tokenizer_config.json"] {
            try FileManager.default.removeItem(atPath: dir + "/other/" + f)
            try FileManager.default.copyItem(atPath: Self.models + "/gpt2/" + f, toPath: dir + "/other/" + f)
        }
        let other = CLI.sftDist(["generate", "--model", "llama", "--adapter", "other", "--prompt", "x"], cwd: dir)
        XCTAssertEqual(other.status, 1, other.all)
        XCTAssertTrue(other.stderr.contains("other: its tokenizer differs from llama's ("), other.all)
        XCTAssertTrue(other.stderr.contains("an adapter's tokenizer must be its base's but for the chat template and end token"), other.all)
    }

    /// Ranks compare the tokenizer too: an adapter's tokenizer on one node only laid rank 1's
    /// prompts out with another template.
    func testRanksWithAnotherAdapterTokenizerAreRefused() throws {
        let dir = CLI.tempDir("chat-template-ranks")
        try FileManager.default.copyItem(atPath: Self.models + "/llama", toPath: dir + "/llama")
        let row = #"{"messages": [{"role": "user", "content": "add 2 3 ="}, {"role": "assistant", "content": " 5"}]}"#
        try (String(repeating: row + "\n", count: 12)).write(toFile: dir + "/chat.jsonl", atomically: true, encoding: .utf8)
        let t = CLI.sftDist(["train", "--model", "llama", "--chat-template", "plain", "--lora-rank", "2", "--data", "chat.jsonl", "--steps", "1",
                             "--eval-examples", "0", "--quiet", "--out", "run"], cwd: dir)
        XCTAssertEqual(t.status, 0, t.all)
        let r1 = dir + "/r1"
        try FileManager.default.createDirectory(atPath: r1, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: dir + "/run/model", toPath: r1 + "/ad")
        for f in try FileManager.default.contentsOfDirectory(atPath: r1 + "/ad") where !f.hasPrefix("adapter_") {
            try FileManager.default.removeItem(atPath: r1 + "/ad/" + f)
        }
        try FileManager.default.copyItem(atPath: dir + "/run/model", toPath: dir + "/ad")
        try FileManager.default.copyItem(atPath: dir + "/chat.jsonl", toPath: r1 + "/chat.jsonl")
        let base = dir + "/llama"
        let generate = ["generate", "--model", base, "--adapter", "ad", "--prompts", "chat.jsonl", "--json", "--max-new-tokens", "1"]
        let r = CLI.mpirunEach([(generate, dir), (generate, r1)])
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertEqual(CLI.occurrences(of: "this rank loaded another tokenizer than rank 0", in: r.stderr), 1, r.all)
    }

    /// And its tokenizer.json: a node whose copy had other merges generated other tokens with
    /// exit 0 (`generate --prompts`), and score blamed the data file (a fuzzing review).
    func testRanksWithOtherMergesAreRefused() throws {
        let dir = CLI.tempDir("tokenizer-merges-ranks"), r1 = dir + "/r1"
        try FileManager.default.createDirectory(atPath: r1, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.models + "/llama", toPath: dir + "/m")
        try FileManager.default.copyItem(atPath: Self.models + "/llama", toPath: r1 + "/m")
        let path = r1 + "/m/tokenizer.json"
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        var model = json["model"] as! [String: Any]
        model["merges"] = Array((model["merges"] as! [Any]).dropFirst(40))
        json["model"] = model
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
        let rows = (0..<8).map { #"{"prompt": "add \#($0) 3 =", "completion": " \#($0 + 3)"}"# }.joined(separator: "\n") + "\n"
        for d in [dir, r1] { try rows.write(toFile: d + "/d.jsonl", atomically: true, encoding: .utf8) }
        for command in [["generate", "--model", "m", "--prompts", "d.jsonl", "--json", "--max-new-tokens", "1"],
                        ["score", "--model", "m", "--data", "d.jsonl"]] {
            let r = CLI.mpirunEach([(command, dir), (command, r1)])
            XCTAssertEqual(r.status, 1, "\(command[0]): \(r.all)")
            XCTAssertEqual(CLI.occurrences(of: "--model m: this rank loaded another tokenizer than rank 0 (tokenizer.json", in: r.stderr), 1, "\(command[0]): \(r.all)")
        }
    }
}
