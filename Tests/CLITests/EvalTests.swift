import Foundation
import XCTest

/// `sft-dist eval` on a fixture whose answers are known by construction: the references of
/// some prompts are the model's own greedy answers, of the others something its greedy
/// answer cannot equal. Accuracy and pass@k must be exactly the constructed fraction, for any
/// rank count.
final class EvalTests: XCTestCase {
    func testAccuracyOnAFixtureKnownByConstruction() throws {
        let dir = CLI.tempDir("eval-known")
        // A barely trained model: its greedy answers are varied bytes, not the blank ones an
        // early model converges to.
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--lr", "1e-6", "--batch-size", "4",
                                    "--eval-examples", "0", "--quiet", "--out", dir + "/run"]).status, 0)
        let model = dir + "/run/model"
        let prompts = (0..<12).map { "add \($0) \($0 + 1) =" }
        try prompts.map { "{\"prompt\": \"\($0)\", \"completion\": \" 0\"}" }.joined(separator: "\n")
            .write(toFile: dir + "/prompts.jsonl", atomically: true, encoding: .utf8)
        let g = CLI.sftDist(["generate", "--model", model, "--prompts", dir + "/prompts.jsonl", "--max-new-tokens", "6", "--json"])
        XCTAssertEqual(g.status, 0, g.all)
        let answers = try g.stdout.split(separator: "\n").map {
            (try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any])["text"] as! String
        }
        XCTAssertEqual(answers.count, 12)
        // Even prompts: the model's own answer (when it is not empty). Odd ones, and empty
        // answers: the answer plus a character, which the greedy completion cannot equal.
        var lines: [String] = [], right = 0
        for (i, p) in prompts.enumerated() {
            let own = i % 2 == 0 && !answers[i].trimmingCharacters(in: .whitespaces).isEmpty
            if own { right += 1 }
            let data = try JSONSerialization.data(withJSONObject: ["prompt": p, "completion": own ? answers[i] : answers[i] + "x"])
            lines.append(String(decoding: data, as: UTF8.self))
        }
        XCTAssertGreaterThan(right, 0, "the model produced only empty answers: \(answers)")
        try lines.joined(separator: "\n").write(toFile: dir + "/fixture.jsonl", atomically: true, encoding: .utf8)
        // Samples at temperature 1e-6 are the greedy answers again (softmax(z/T) is one-hot at the
        // largest logit; --samples at temperature 0 is refused, as it can only repeat the greedy
        // answer): c = n on the right prompts and 0 elsewhere, so pass@1 = pass@3 = the fraction.
        for n in [1, 2] {
            let r = CLI.mpirun(n, ["eval", "--model", model, "--data", dir + "/fixture.jsonl", "--max-new-tokens", "6", "--json",
                                   "--samples", "3", "--pass-k", "1,3", "--temperature", "1e-6"])
            XCTAssertEqual(r.status, 0, r.all)
            let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
            XCTAssertEqual(j["eval_accuracy"] as! Double, Double(right) / 12, accuracy: 1e-12, "-n \(n)")
            for k in [1, 3] {
                XCTAssertEqual(j["eval_pass@\(k)"] as? Double ?? .nan, Double(right) / 12, accuracy: 1e-12, "-n \(n): pass@\(k)")
            }
            XCTAssertEqual(j["eval_generated"] as? Int, 12)
            XCTAssertNotNil(j["eval_ece"])
        }
    }

    func testEvalWithSamplesAndNumericScorerUnderFourRanks() throws {
        let dir = CLI.tempDir("eval-numeric")
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--steps", "4", "--batch-size", "8", "--eval-examples", "0",
                                    "--quiet", "--out", dir]).status, 0)
        let args = ["eval", "--model", dir + "/model", "--data", dir + "/data/heldout.jsonl", "--scorer", "numeric",
                    "--examples", "16", "--samples", "3", "--pass-k", "1,3", "--json"]
        let r1 = CLI.mpirun(1, args), r4 = CLI.mpirun(4, args)
        XCTAssertEqual(r4.status, 0, r4.all)
        let j1 = try JSONSerialization.jsonObject(with: Data(r1.stdout.utf8)) as! [String: Any]
        let j4 = try JSONSerialization.jsonObject(with: Data(r4.stdout.utf8)) as! [String: Any]
        for key in ["eval_accuracy", "eval_pass@1", "eval_pass@3", "eval_mean_length", "eval_ece"] {
            XCTAssertEqual(j1[key] as! Double, j4[key] as! Double, accuracy: 1e-9, key)
        }
        XCTAssertGreaterThanOrEqual(j1["eval_pass@3"] as! Double, j1["eval_pass@1"] as! Double)
    }

    /// Settings that would do nothing are refused naming the flag (they were accepted and
    /// ignored): generation settings with --examples 0, sampling settings without --samples;
    /// generate's sampling settings at temperature 0. (--samples at temperature 0 is allowed:
    /// pass@k of the greedy answer, which testAccuracyOnAFixtureKnownByConstruction uses.)
    /// An unknown --chat-template is named as the flag (it said "chat_template", the recipe key).
    func testUnknownChatTemplateNamesTheFlag() {
        let data = CLI.tempDir("eval-chat") + "/d.jsonl"
        try? "{\"prompt\": \"add 1 2 =\", \"completion\": \" 3\"}\n".write(toFile: data, atomically: true, encoding: .utf8)
        for args in [["eval", "--model", "tiny", "--data", data], ["generate", "--model", "tiny", "--prompts", data],
                     ["score", "--model", "tiny", "--data", data]] {
            let r = CLI.sftDist(args + ["--chat-template", "chtml"])
            XCTAssertEqual(r.status, 1, r.all)
            XCTAssertTrue(r.stderr.hasPrefix("sft-dist: error: --chat-template must be one of "), "\(args): \(r.all)")
        }
    }

    func testSettingsThatWouldDoNothingAreRefused() {
        let data = CLI.tempDir("eval-noop") + "/d.jsonl"
        try? "{\"prompt\": \"add 1 2 =\", \"completion\": \" 3\"}\n".write(toFile: data, atomically: true, encoding: .utf8)
        let eval = ["eval", "--model", "tiny", "--data", data]
        for (args, needle) in [(eval + ["--examples", "0", "--samples", "4"], "--samples acts on the generated answers, and --examples 0 generates none"),
                               (eval + ["--examples", "0", "--scorer", "numeric"], "--scorer acts on the generated answers"),
                               (eval + ["--temperature", "0.5"], "--temperature acts on sampled answers (--samples N for pass@k)"),
                               (eval + ["--pass-k", "1,2"], "--pass-k acts on sampled answers"),
                               // An empty item was dropped (1,,2 read as 1,2; a review).
                               (eval + ["--samples", "2", "--pass-k", "1,,2"], "--pass-k values must be integers between 1 and --samples (2)"),
                               (eval + ["--samples", "4", "--temperature", "0"], "--samples 4 at --temperature 0 draws the greedy answer 4 times"),
                               // Given at their defaults they are still given (they were accepted as if absent).
                               (eval + ["--pass-k", "1"], "--pass-k acts on sampled answers"),
                               (eval + ["--temperature", "1"], "--temperature acts on sampled answers"),
                               (eval + ["--examples", "0", "--scorer", "exact"], "--scorer acts on the generated answers"),
                               (eval + ["--examples", "0", "--max-new-tokens", "16"], "--max-new-tokens acts on the generated answers"),
                               (eval + ["--scorer-timeout", "60"], "--scorer-timeout is for the program of --scorer command"),
                               // It was handed to the exact scorer, which said: unknown argument "cmd".
                               (eval + ["--scorer-cmd", "cat"], "--scorer-cmd is for the program of --scorer command; with --scorer exact it would have no effect"),
                               (eval + ["--scorer-timeout", "5"], "--scorer-timeout is for the program of --scorer command"),
                               (eval + ["--examples", "0", "--scorer-timeout", "5"], "--scorer-timeout acts on the generated answers"),
                               // A loss-scope switch or text field for rows the data does not have, as train refuses them (they were accepted).
                               (eval + ["--no-assistant-only-loss"], "--no-assistant-only-loss sets which tokens of {messages} rows are scored, and \(data) has none: drop it"),
                               (["score", "--model", "tiny", "--data", data, "--dataset-text-field", "body"], "--dataset-text-field body names the field of plain-text rows, and \(data) has none: drop it"),
                               (["select", "--model", "tiny", "--data", data, "--method", "loss", "--keep", "0.5", "--out", data + ".kept", "--no-assistant-only-loss"],
                                "--no-assistant-only-loss sets which tokens of {messages} rows are scored"),
                               (["generate", "--model", "tiny", "--prompt", "add 1 2 =", "--top-k", "5"], "--top-k acts on sampling, and --temperature 0 (the default) is greedy"),
                               (["generate", "--model", "tiny", "--prompt", "add 1 2 =", "--top-p", "0.5"], "--top-p acts on sampling")] {
            let r = CLI.sftDist(args)
            XCTAssertEqual(r.status, 1, "\(args): \(r.all)")
            XCTAssertTrue(r.stderr.contains(needle), "\(args): \(r.all)")
        }
        XCTAssertEqual(CLI.sftDist(eval + ["--examples", "1", "--samples", "2", "--pass-k", "1,2", "--temperature", "0.7", "--seed", "4"]).status, 0)
        XCTAssertEqual(CLI.sftDist(["generate", "--model", "tiny", "--prompt", "add 1 2 =", "--temperature", "0.8", "--top-k", "5", "--seed", "3"]).status, 0)
        // Greedy spelled out, and a seed kept through a temperature sweep, are not refused.
        XCTAssertEqual(CLI.sftDist(eval + ["--examples", "1", "--temperature", "0", "--seed", "2"]).status, 0)
        XCTAssertEqual(CLI.sftDist(["generate", "--model", "tiny", "--prompt", "add 1 2 =", "--temperature", "0", "--seed", "3"]).status, 0)
    }

    func testBrokenExternalScorerIsOneClearError() {
        let dir = CLI.tempDir("eval-badscorer")
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--steps", "2", "--batch-size", "4", "--eval-examples", "0",
                                    "--quiet", "--out", dir]).status, 0)
        let r = CLI.mpirun(2, ["eval", "--model", dir + "/model", "--data", dir + "/data/heldout.jsonl", "--examples", "8",
                               "--scorer", "command", "--scorer-cmd", "while read -r l; do echo notanumber; done"], seconds: 60)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertNotEqual(r.status, 124, "hung")
        XCTAssertEqual(CLI.occurrences(of: "not a decimal number", in: r.all), 1, r.all)
    }

    /// One streamed prompt under mpirun: rank 0 streams, the others must not wait for it.
    func testSinglePromptStreamsUnderMPIWithoutHanging() {
        let dir = CLI.tempDir("gen-single")
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--steps", "2", "--batch-size", "4", "--eval-examples", "0",
                                    "--quiet", "--out", dir]).status, 0)
        let one = CLI.sftDist(["generate", "--model", dir + "/model", "--prompt", "copy ab =", "--max-new-tokens", "5"])
        let two = CLI.mpirun(2, ["generate", "--model", dir + "/model", "--prompt", "copy ab =", "--max-new-tokens", "5"], seconds: 60)
        XCTAssertEqual(two.status, 0, two.all)
        XCTAssertTrue(two.stdout.hasPrefix("copy ab ="), two.stdout)
        XCTAssertEqual(one.stdout, two.stdout)
    }
}
