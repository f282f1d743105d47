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
}
