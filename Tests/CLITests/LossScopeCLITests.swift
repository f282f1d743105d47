import Foundation
import XCTest

/// `--no-completion-only-loss` / `--no-assistant-only-loss` end to end. The byte tokenizer
/// makes one token per character, so a row trained on every token equals, id for id and mask
/// for mask, a row whose prompt is only its first character: the two runs' figures must be
/// the same numbers (an independent form of the same loss).
final class LossScopeCLITests: XCTestCase {
    func write(_ path: String, _ rows: [(String, String)]) {
        let lines = rows.map { p, c in
            String(data: try! JSONSerialization.data(withJSONObject: ["prompt": p, "completion": c]), encoding: .utf8)!
        }
        FileManager.default.createFile(atPath: path, contents: Data(lines.joined(separator: "\n").utf8))
    }

    /// `add a b =` → ` a+b` rows, and the same text split after its first character.
    func writeBoth(_ dir: String, name: String, count: Int, seed: Int) -> (whole: String, split: String) {
        let rows = (0..<count).map { i -> (String, String) in
            let a = (i * 7 + seed) % 50, b = (i * 13 + seed) % 30
            return ("add \(a) \(b) =", " \(a + b)")
        }
        let whole = dir + "/\(name).jsonl", split = dir + "/\(name)-split.jsonl"
        write(whole, rows)
        write(split, rows.map { p, c in (String(p.prefix(1)), String(p.dropFirst()) + c) })
        return (whole, split)
    }

    func testEveryTokenEqualsTheSameTextAsACompletion() throws {
        let dir = CLI.tempDir("loss-scope")
        let train = writeBoth(dir, name: "train", count: 24, seed: 1), held = writeBoth(dir, name: "held", count: 8, seed: 5)
        let args = ["train", "--model", "tiny", "--steps", "3", "--batch-size", "6", "--micro-batch-size", "3",
                    "--eval-every", "0", "--eval-examples", "0", "--quiet"]
        let all = CLI.sftDist(args + ["--data", train.whole, "--heldout", held.whole, "--no-completion-only-loss", "--out", dir + "/all"])
        XCTAssertEqual(all.status, 0, all.all)
        let split = CLI.sftDist(args + ["--data", train.split, "--heldout", held.split, "--out", dir + "/split"])
        XCTAssertEqual(split.status, 0, split.all)
        let answers = CLI.sftDist(args + ["--data", train.whole, "--heldout", held.whole, "--out", dir + "/answers"])
        XCTAssertEqual(answers.status, 0, answers.all)

        let a = try rows(dir + "/all"), s = try rows(dir + "/split"), c = try rows(dir + "/answers")
        XCTAssertEqual(a.count, 5, "3 steps and 2 evaluations: \(a)")
        XCTAssertEqual(a.count, s.count)
        for (i, (x, y)) in zip(a, s).enumerated() {
            for key in ["loss", "grad_norm", "mean_token_accuracy", "eval_loss", "eval_mean_token_accuracy"] where x[key] != nil || y[key] != nil {
                XCTAssertEqual(x[key], y[key], "row \(i) \(key)")
            }
        }
        // The answers-only run trains fewer tokens, so it differs (the switch did something).
        let firstLoss = { (rows: [[String: Double]]) in rows.first { $0["loss"] != nil }?["loss"] }
        XCTAssertNotNil(firstLoss(a))
        XCTAssertNotEqual(firstLoss(a), firstLoss(c))
        XCTAssertTrue(try String(contentsOfFile: dir + "/all/recipe.yaml", encoding: .utf8).contains("completion_only_loss: false"))

        // eval's own switch: the trained model scores the held-out rows as train's evaluation did.
        let model = dir + "/all/model"
        let e1 = CLI.sftDist(["eval", "--model", model, "--data", held.whole, "--no-completion-only-loss", "--examples", "0", "--json"])
        let e2 = CLI.sftDist(["eval", "--model", model, "--data", held.split, "--examples", "0", "--json"])
        let e3 = CLI.sftDist(["eval", "--model", model, "--data", held.whole, "--examples", "0", "--json"])
        XCTAssertEqual(e1.status, 0, e1.all)
        let j = try [e1, e2, e3].map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.stdout.utf8)) as? [String: Any], $0.all) }
        let l = try j.map { try XCTUnwrap($0["eval_loss"] as? Double, "\($0)") }
        XCTAssertEqual(l[0], l[1], accuracy: 1e-6 * l[1])
        XCTAssertNotEqual(l[0], l[2], accuracy: 1e-3)
        XCTAssertEqual(l[0], a.last?["eval_loss"] ?? .nan, accuracy: 1e-5 * l[0], "eval agrees with the run's final evaluation")

        // select's switch: the rows' losses as the split rows'.
        func selectLosses(_ data: String, _ extra: [String]) throws -> [Double] {
            let out = dir + "/sel-\(extra.count)-\((data as NSString).lastPathComponent)"
            let r = CLI.sftDist(["select", "--method", "loss", "--keep", "0.5", "--model", model, "--data", data, "--out", out + ".jsonl"] + extra)
            XCTAssertEqual(r.status, 0, r.all)
            return try String(contentsOfFile: out + ".scores.jsonl", encoding: .utf8).split(separator: "\n").map {
                try XCTUnwrap((JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["loss"] as? Double)
            }
        }
        let sAll = try selectLosses(held.whole, ["--no-completion-only-loss"]), sSplit = try selectLosses(held.split, [])
        XCTAssertEqual(sAll.count, 8)
        for (x, y) in zip(sAll, sSplit) { XCTAssertEqual(x, y, accuracy: 1e-6 * y) }
        XCTAssertNotEqual(try selectLosses(held.whole, []), sAll)

        // score's switch: the same log-probabilities as the split rows', and the text of a
        // {"body"} row under --dataset-text-field scores every token as well.
        func scores(_ data: String, _ extra: [String]) throws -> [[Double]] {
            let r = CLI.sftDist(["score", "--model", model, "--data", data] + extra)
            XCTAssertEqual(r.status, 0, r.all)
            return try r.stdout.split(separator: "\n").map {
                try XCTUnwrap((JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["completion_logprobs"] as? [Double])
            }
        }
        let scAll = try scores(held.whole, ["--no-completion-only-loss"]), scSplit = try scores(held.split, [])
        XCTAssertEqual(scAll.count, 8)
        XCTAssertEqual(scAll, scSplit)
        XCTAssertLessThan(try scores(held.whole, [])[0].count, scAll[0].count)
        let body = dir + "/body.jsonl"
        let texts = try String(contentsOfFile: held.whole, encoding: .utf8).split(separator: "\n").map { line -> String in
            let row = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
            return String(data: try JSONSerialization.data(withJSONObject: ["body": row["prompt"]! + row["completion"]!]), encoding: .utf8)!
        }
        FileManager.default.createFile(atPath: body, contents: Data(texts.joined(separator: "\n").utf8))
        XCTAssertEqual(try scores(body, ["--dataset-text-field", "body"]), scAll)
    }

    /// Conversations trained on every token: the same losses with -n 1 and -n 2.
    func testEveryTokenOfConversationsIsRankInvariant() throws {
        let dir = CLI.tempDir("loss-scope-chat")
        let lines = (0..<16).map { i -> String in
            let turns: [[String: String]] = [["role": "user", "content": "add \(i) \(i % 5) ="], ["role": "assistant", "content": "\(i + i % 5)"]]
            return String(data: try! JSONSerialization.data(withJSONObject: ["messages": turns]), encoding: .utf8)!
        }
        FileManager.default.createFile(atPath: dir + "/chat.jsonl", contents: Data(lines.joined(separator: "\n").utf8))
        let args = ["train", "--model", "tiny", "--data", dir + "/chat.jsonl", "--steps", "3", "--batch-size", "5",
                    "--micro-batch-size", "2", "--max-length", "96", "--eval-every", "0", "--eval-examples", "0",
                    "--quiet", "--no-assistant-only-loss"]
        let runs = CLI.trainingRows(atRanks: [1, 2], args, label: "loss-scope-chat", seconds: 90)
        XCTAssertEqual(runs[0].filter { $0["grad_norm"] != nil }.count, 3)
        for (x, y) in zip(runs[0], runs[1]) {
            for key in ["loss", "grad_norm", "eval_loss"] where x[key] != nil {
                XCTAssertEqual(x[key] ?? .nan, y[key] ?? .nan, accuracy: 1e-5 * max(abs(x[key] ?? 1), 1e-3), key)
            }
        }
        let answersOnly = CLI.sftDist(Array(args.dropLast()) + ["--out", dir + "/answers"])
        XCTAssertEqual(answersOnly.status, 0, answersOnly.all)
        XCTAssertNotEqual(CLI.losses(dir + "/answers").first, runs[0].first?["loss"], "the switch changes the loss")
    }

    func testASwitchThatWouldDoNothingOrMisleadIsRefused() throws {
        let r = CLI.sftDist(["train", "--dry-run", "--objective", "dpo", "--data", "pairs.jsonl", "--no-completion-only-loss"])
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertTrue(r.stderr.contains("--no-completion-only-loss sets which tokens of an SFT row are trained; --objective dpo trains on preference pairs and scores their answers only: give it only to SFT runs"), r.stderr)
        // Sampling methods end an answer where its trained tokens end (the stop token).
        let grpo = CLI.sftDist(["train", "--dry-run", "--objective", "grpo", "--reward", "task", "--no-assistant-only-loss"])
        XCTAssertEqual(grpo.status, 1, grpo.all)
        XCTAssertTrue(grpo.stderr.contains("--no-assistant-only-loss sets which tokens of an SFT row are trained; --objective grpo trains sampled answers"), grpo.stderr)
        let dir = CLI.tempDir("loss-scope-refused")
        let file = dir + "/r.yaml"
        try "objective: grpo\nrewards: [task]\ncompletion_only_loss: false\n".write(toFile: file, atomically: true, encoding: .utf8)
        let yaml = CLI.sftDist(["train", "--dry-run", "--config", file])
        XCTAssertTrue(yaml.stderr.contains("r.yaml:3: completion_only_loss false sets which tokens"), yaml.stderr)
        // The built-in data has no {messages} rows: --no-assistant-only-loss would do nothing.
        let none = CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--no-assistant-only-loss", "--out", dir + "/out"])
        XCTAssertEqual(none.status, 1, none.all)
        XCTAssertTrue(none.stderr.contains("--no-assistant-only-loss sets which tokens of {messages} rows are trained, and the data has none: drop it"), none.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out/model"))
        // A recipe's switch for an objective a flag replaced is unused (commented in recipe.yaml), not refused.
        // (Conversational pairs: no {prompt, completion} row, so the switch would be refused as doing nothing.)
        let pairs = (0..<12).map { i in #"{"messages": [{"role": "user", "content": "\#(i)+1="}], "chosen": "\#(i + 1)", "rejected": "\#(i + 2)"}"# }
        FileManager.default.createFile(atPath: dir + "/pairs.jsonl", contents: Data(pairs.joined(separator: "\n").utf8))
        try "completion_only_loss: false\n".write(toFile: dir + "/sft.yaml", atomically: true, encoding: .utf8)
        let dpo = CLI.sftDist(["train", "--config", dir + "/sft.yaml", "--objective", "dpo", "--model", "tiny", "--data", dir + "/pairs.jsonl",
                               "--steps", "1", "--batch-size", "2", "--eval-examples", "0", "--eval-every", "0", "--out", dir + "/dpo", "--quiet"])
        XCTAssertEqual(dpo.status, 0, dpo.all)
        let ok = CLI.sftDist(["train", "--dry-run", "--no-assistant-only-loss"])
        XCTAssertEqual(ok.status, 0, ok.all)
        XCTAssertTrue(ok.stdout.contains("assistant_only_loss: false"), ok.stdout)
        XCTAssertTrue(ok.stdout.contains("completion_only_loss: true"), ok.stdout)
    }

    func rows(_ dir: String) throws -> [[String: Double]] {
        try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").compactMap { line in
            guard let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  o["loss"] != nil || o["eval_loss"] != nil else { return nil }
            return o.compactMapValues { ($0 as? NSNumber)?.doubleValue }
        }
    }
}
