import Foundation
import XCTest

/// grpo reads `--data` and `--heldout` rows that are only a prompt, as TRL's GRPOTrainer reads
/// its prompt-only datasets: the answers are sampled, so a completion is only a reference,
/// which the `task` reward does not read. The same rows with and without completions must train
/// and evaluate alike, under any rank count.
final class GRPOPromptOnlyCLITests: XCTestCase {
    /// `make-data` rows (`{prompt, completion}`), and the same rows with the completion left out.
    static func rows(_ dir: String, name: String, count: Int, seed: Int) -> (full: String, prompts: String) {
        let full = dir + "/\(name).jsonl", prompts = dir + "/\(name)-prompts.jsonl"
        let r = CLI.sftDist(["make-data", "--out", full, "--count", "\(count)", "--seed", "\(seed)"])
        precondition(r.status == 0, r.all)
        let lines = (try? String(contentsOfFile: full, encoding: .utf8))?.split(separator: "\n") ?? []
        let stripped = lines.map { line -> String in
            var row = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] ?? [:]
            row["completion"] = nil
            return String(decoding: (try? JSONSerialization.data(withJSONObject: row, options: [.sortedKeys])) ?? Data(), as: UTF8.self)
        }
        try? (stripped.joined(separator: "\n") + "\n").write(toFile: prompts, atomically: true, encoding: .utf8)
        return (full, prompts)
    }

    static func args(_ extra: [String]) -> [String] {
        ["train", "--model", GRPOCLITests.warm, "--objective", "grpo", "--reward", "task", "--reward", "format=0.1",
         "--reward-arg", "format.pattern=(?s).{4,}", "--rollouts", "4", "--batch-size", "16", "--micro-batch-size", "3",
         "--steps", "4", "--max-completion-length", "6", "--lr", "3e-3", "--warmup-steps", "0", "--eval-every", "2",
         "--eval-examples", "6"] + extra
    }

    /// The greedy answers' figures, which need references (`GenerationEval`).
    static let greedyKeys: Set = ["eval_accuracy", "eval_ece", "eval_mean_length", "eval_generated", "eval_mean_reward"]

    /// Timings aside, every figure of a row.
    static func figures(_ row: [String: Double]) -> [String: Double] { row.filter { !$0.key.hasSuffix("_s") } }

    func testPromptOnlyRowsTrainAndEvaluateAsTheSameRowsWithCompletions() throws {
        let dir = CLI.tempDir("grpo-prompt-only")
        let data = Self.rows(dir, name: "train", count: 300, seed: 5), held = Self.rows(dir, name: "held", count: 20, seed: 9)
        var runs: [(training: [[String: Double]], eval: [[String: Double]])] = []
        for (n, files) in [(1, [data.full, held.full]), (1, [data.prompts, held.prompts]), (2, [data.prompts, held.prompts])] {
            let out = CLI.tempDir("grpo-prompt-only-\(runs.count)")
            let r = CLI.mpirun(n, Self.args(["--eval-rollouts", "3", "--data", files[0], "--heldout", files[1], "--out", out]), seconds: 240)
            XCTAssertEqual(r.status, 0, r.all)
            if files[0] == data.prompts {
                XCTAssertTrue(r.stdout.contains("loaded 300 of 300 records from \(data.prompts) (all prompts only, with no completion)"), r.stdout)
                XCTAssertTrue(r.stdout.contains("note: 20 of 20 held-out rows are prompts only: the evaluation rolls them out"), r.stdout)
            }
            runs.append((CLI.trainingRows(out), CLI.evalRows(out)))
        }
        guard runs.allSatisfy({ $0.training.count == 4 && $0.eval.count == 3 }) else { return XCTFail("\(runs)") }
        // Something was learnt from: rewards differ within some group.
        XCTAssertTrue(runs[0].training.contains { ($0["frac_reward_zero_std"] ?? 1) < 1 }, "\(runs[0].training)")
        // Without completions, the same rollouts, rewards, losses and evaluations, bit for bit.
        for (a, b) in zip(runs[0].training, runs[1].training) { XCTAssertEqual(Self.figures(a), Self.figures(b)) }
        for (a, b) in zip(runs[0].eval, runs[1].eval) {
            XCTAssertEqual(Set(a.keys).subtracting(b.keys), Self.greedyKeys, "prompts only: no reference for the greedy answers")
            XCTAssertEqual(Self.figures(a).filter { !Self.greedyKeys.contains($0.key) }, Self.figures(b))
        }
        // At -n 2, up to float summation order.
        for (a, b) in zip(runs[1].training + runs[1].eval, runs[2].training + runs[2].eval) {
            XCTAssertEqual(Set(a.keys), Set(b.keys))
            for (key, x) in Self.figures(a) {
                XCTAssertEqual(x, b[key] ?? .nan, accuracy: 1e-6 + 1e-4 * abs(x), "step \(a["step"] ?? -1) \(key), -n 1 vs -n 2")
            }
        }
    }

    /// The same with `{"messages"}` rows, TRL's conversational prompts: with no assistant turn the
    /// rollouts still stop at the template's end of turn (they ran to max_completion_length
    /// before, a hostile review found), so the rows train as the same conversations with answers.
    func testPromptOnlyConversationsTrainAsTheSameConversationsWithAnswers() throws {
        let dir = CLI.tempDir("grpo-prompt-only-chat")
        let data = Self.rows(dir, name: "train", count: 300, seed: 5)
        let lines = (try? String(contentsOfFile: data.full, encoding: .utf8))?.split(separator: "\n") ?? []
        func messages(_ turns: [[String: Any]]) -> String {
            String(decoding: (try? JSONSerialization.data(withJSONObject: ["messages": turns], options: [.sortedKeys])) ?? Data(), as: UTF8.self)
        }
        var chats: (full: [String], prompts: [String]) = ([], [])
        for line in lines {
            let row = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] ?? [:]
            let user: [String: Any] = ["role": "user", "content": row["prompt"] ?? ""]
            chats.full.append(messages([user, ["role": "assistant", "content": row["completion"] ?? ""]]))
            chats.prompts.append(messages([user]))
        }
        let full = dir + "/chat.jsonl", prompts = dir + "/chat-prompts.jsonl"
        try (chats.full.joined(separator: "\n") + "\n").write(toFile: full, atomically: true, encoding: .utf8)
        try (chats.prompts.joined(separator: "\n") + "\n").write(toFile: prompts, atomically: true, encoding: .utf8)
        // A model that learnt to answer and end its turn in ChatML.
        let warm = CLI.tempDir("grpo-prompt-only-chat-warm")
        let w = CLI.sftDist(["train", "--model", "tiny", "--data", full, "--batch-size", "16", "--micro-batch-size", "8", "--eval-examples", "0",
                             "--eval-every", "0", "--heldout-fraction", "0", "--quiet", "--lr", "1e-2", "--warmup-steps", "5", "--steps", "300",
                             "--out", warm], seconds: 240)
        XCTAssertEqual(w.status, 0, w.all)
        var runs: [[[String: Double]]] = []
        for file in [full, prompts] {
            let out = CLI.tempDir("grpo-prompt-only-chat-\(runs.count)")
            // The task reward reads {"prompt"} rows only (a template wraps a conversation's): a digit check instead.
            let args = ["train", "--model", warm + "/model", "--objective", "grpo", "--reward", "regex", "--reward-arg", #"regex.pattern=^ ?\d"#,
                        "--reward", "format=0.1", "--rollouts", "4", "--batch-size", "16", "--micro-batch-size", "3", "--steps", "4",
                        "--max-completion-length", "8", "--lr", "3e-3", "--warmup-steps", "0", "--eval-every", "0", "--eval-examples", "0",
                        "--data", file, "--heldout-fraction", "0", "--out", out]
            let r = CLI.sftDist(args, seconds: 240)
            XCTAssertEqual(r.status, 0, r.all)
            runs.append(CLI.trainingRows(out))
        }
        guard runs.allSatisfy({ $0.count == 4 }) else { return XCTFail("\(runs)") }
        XCTAssertTrue(runs[0].contains { ($0["completions/clipped_ratio"] ?? 1) < 1 }, "the warm model ends its turns: \(runs[0])")
        for (a, b) in zip(runs[0], runs[1]) { XCTAssertEqual(Self.figures(a), Self.figures(b)) }
    }

    /// Prompt-only rows where nothing could use them get one line naming what to do.
    func testPromptOnlyRowsWithNothingToDoAreRefused() throws {
        let dir = CLI.tempDir("grpo-prompt-only-refused")
        let data = Self.rows(dir, name: "train", count: 100, seed: 5), held = Self.rows(dir, name: "held", count: 10, seed: 9)
        let cases: [([String], String)] = [
            // The held-out NLL of rows with no completion is nothing.
            (["--data", data.full, "--heldout", held.prompts, "--eval-rollouts", "0"],
             "\(held.prompts): the held-out rows are prompts only, which have no NLL, and this run evaluates the held-out NLL (--eval-rollouts 0)"),
            (["--data", data.full, "--heldout", held.prompts, "--eval-examples", "0"], "evaluates the held-out NLL (--eval-examples 0)"),
            // A reward that compares with the reference has none.
            (["--data", data.prompts, "--reward", "numeric"], "\(data.prompts):1: reward numeric needs a reference answer, and this prompt has none"),
            // The mixing objectives train on the completions.
            (["--data", data.prompts, "--objective", "chord"], "\(data.prompts):1: missing field \"completion\""),
        ]
        for (extra, message) in cases {
            let r = CLI.sftDist(Self.args(["--out", CLI.tempDir("grpo-prompt-only-refused-run")]) + extra, seconds: 120)
            XCTAssertEqual(r.status, 1, "\(extra): \(r.all)")
            XCTAssertTrue(r.stderr.contains(message), "\(extra): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").filter { $0.hasPrefix("sft-dist: error") }.count, 1, r.stderr)
        }
        // A prompt of no token has nothing to continue (its rollouts came out empty, logged as cut).
        let empty = dir + "/empty.jsonl"
        try ((try String(contentsOfFile: data.prompts, encoding: .utf8)).split(separator: "\n").prefix(1).joined() + "\n{\"prompt\": \"\"}\n")
            .write(toFile: empty, atomically: true, encoding: .utf8)
        var args = Self.args(["--data", empty, "--heldout-fraction", "0", "--out", CLI.tempDir("grpo-prompt-only-empty")])
        for flag in ["--eval-every", "--eval-examples"] { args[args.firstIndex(of: flag)! + 1] = "0" }
        // A reward that reads no task prompt (task refused the empty prompt as no task, before the check).
        args[args.firstIndex(of: "task")!] = "regex"
        args += ["--reward-arg", #"regex.pattern=\d"#]
        let r = CLI.sftDist(args, seconds: 120)
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertTrue(r.stderr.contains("\(empty):2: the prompt is empty (no token for the model to continue)"), r.stderr)
    }
}
