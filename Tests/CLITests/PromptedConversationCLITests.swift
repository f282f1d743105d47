import Foundation
import XCTest

/// TRL's conversational prompt/completion rows end to end (Sources/Training/Data/PromptedConversation.swift).
/// A row whose prompt is one user turn is, token for token, the `{"messages"}` row of the same
/// two turns; the switches' masks are checked against transformers' ids in the unit tests.
final class PromptedConversationCLITests: XCTestCase {
    func testConversationalRowsTrainAsTheirMessagesAtAnyRankCountAndServeGRPO() throws {
        let dir = CLI.tempDir("prompted-conversation")
        let sums = (0..<16).map { i in ("add \(i % 9) \(i % 7) =", " \(i % 9 + i % 7)") }
        let user = { (p: String) in ["role": "user", "content": p] }, assistant = { (c: String) in ["role": "assistant", "content": c] }
        CLI.writeJSONL(dir + "/pc.jsonl", sums.map { ["prompt": [user($0.0)], "completion": [assistant($0.1)]] })
        CLI.writeJSONL(dir + "/messages.jsonl", sums.map { ["messages": [user($0.0), assistant($0.1)]] })
        CLI.writeJSONL(dir + "/prompts.jsonl", sums.map { ["prompt": [user($0.0)]] })
        // With an earlier exchange in the prompt, whose reply only --no-completion-only-loss trains.
        let earlier = [user("add 1 1 ="), assistant(" 2")]
        CLI.writeJSONL(dir + "/pc-turns.jsonl", sums.map { ["prompt": earlier + [user($0.0)], "completion": [assistant($0.1)]] })
        CLI.writeJSONL(dir + "/messages-turns.jsonl", sums.map { ["messages": earlier + [user($0.0), assistant($0.1)]] })
        let args = ["train", "--model", "tiny", "--steps", "3", "--batch-size", "4", "--eval-every", "0", "--eval-examples", "0",
                    "--heldout-fraction", "0", "--quiet"]
        func run(_ n: Int, _ data: String, _ out: String, _ extra: [String] = []) -> [[String: Double]] {
            let r = n == 1 ? CLI.sftDist(args + extra + ["--data", dir + "/" + data, "--out", dir + "/" + out])
                : CLI.mpirun(n, args + extra + ["--data", dir + "/" + data, "--out", dir + "/" + out])
            XCTAssertEqual(r.status, 0, r.all)
            return CLI.trainingRows(dir + "/" + out)
        }
        let pc = run(1, "pc.jsonl", "pc"), messages = run(1, "messages.jsonl", "messages"), pc2 = run(2, "pc.jsonl", "pc2")
        XCTAssertEqual(pc.count, 3)
        for (a, b) in zip(pc, messages) {
            for key in ["loss", "grad_norm", "num_tokens", "mean_token_accuracy"] { XCTAssertEqual(a[key], b[key], key) }
        }
        for (a, b) in zip(pc, pc2) {
            XCTAssertEqual(a["loss"] ?? .nan, b["loss"] ?? 0, accuracy: 1e-6 * max(1, abs(a["loss"] ?? 0)))
            XCTAssertEqual(a["loss_tokens"], b["loss_tokens"])
        }
        // TRL's default mask (no assistant_only_loss) also trains the line break after the end
        // of turn: one token more per row. Both switches act on these rows, so neither is refused.
        let trlDefault = run(1, "pc.jsonl", "trl", ["--no-assistant-only-loss"])
        XCTAssertEqual(trlDefault.first?["loss_tokens"], pc.first.map { ($0["loss_tokens"] ?? 0) + 4 })
        let everyAssistant = run(1, "pc.jsonl", "every-assistant", ["--no-completion-only-loss"])
        XCTAssertEqual(everyAssistant.map { $0["loss"] }, pc.map { $0["loss"] }, "the prompt has no assistant turn")
        // An earlier reply in the prompt: trained only with --no-completion-only-loss, which then
        // trains every assistant turn, as the {"messages"} row does by default.
        let turns = run(1, "pc-turns.jsonl", "turns"), turnsEvery = run(1, "pc-turns.jsonl", "turns-every", ["--no-completion-only-loss"])
        let messagesTurns = run(1, "messages-turns.jsonl", "messages-turns")
        XCTAssertEqual(turns.first?["loss_tokens"], pc.first?["loss_tokens"], "only the completion")
        for (a, b) in zip(turnsEvery, messagesTurns) {
            for key in ["loss", "grad_norm", "loss_tokens"] { XCTAssertEqual(a[key], b[key], key) }
        }
        XCTAssertGreaterThan(turnsEvery.first?["loss_tokens"] ?? 0, turns.first?["loss_tokens"] ?? 0)

        // TRL's GRPO datasets: conversational prompts only.
        let grpo = CLI.sftDist(["train", "--model", "tiny", "--objective", "grpo", "--reward", "format", "--steps", "1",
                                "--data", dir + "/prompts.jsonl", "--out", dir + "/grpo", "--quiet"])
        XCTAssertEqual(grpo.status, 0, grpo.all)
        XCTAssertEqual(CLI.trainingRows(dir + "/grpo").count, 1)
    }
}
