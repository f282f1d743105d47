import Foundation
import XCTest

/// Pairs without a `"prompt"` (TRL's implicit prompt: HH-RLHF's whole texts, ultrafeedback's
/// whole conversations) train exactly as the same pairs with the prompt TRL's `extract_prompt`
/// takes, under real `mpirun -n 1/2`; a row whose sides share no beginning names its file:line.
final class ImplicitPromptCLITests: XCTestCase {
    /// 40 arithmetic pairs, written implicit (`implicit.jsonl`) and with their prompt
    /// (`explicit.jsonl`). The rejected answer starts with "-", so the sides first differ at the
    /// answer's first character and the space before it goes to the answers (TRL's rule).
    static func writePairs(_ dir: String, conversations: Bool) -> (implicit: String, explicit: String) {
        var implicit: [String] = [], explicit: [String] = []
        func json(_ object: Any) -> String { String(decoding: try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self) }
        for i in 0..<40 {
            let a = i * 7 % 50, b = i * 13 % 30
            let q = "Q: \(a)+\(b)= A:", good = " \(a + b)", bad = " -\(a + b + 1 + i % 9)\(i % 2 == 0 ? "0" : "")"
            if conversations {
                let user = ["role": "user", "content": "\(a)+\(b)="]
                func reply(_ s: String) -> [String: String] { ["role": "assistant", "content": s] }
                implicit.append(json(["chosen": [user, reply(good)], "rejected": [user, reply(bad)]]))
                explicit.append(json(["prompt": [user], "chosen": [reply(good)], "rejected": [reply(bad)]]))
            } else {
                implicit.append(json(["chosen": q + good, "rejected": q + bad]))
                explicit.append(json(["prompt": q, "chosen": good, "rejected": bad]))
            }
        }
        let paths = (implicit: dir + "/implicit.jsonl", explicit: dir + "/explicit.jsonl")
        FileManager.default.createFile(atPath: paths.implicit, contents: Data(implicit.joined(separator: "\n").utf8))
        FileManager.default.createFile(atPath: paths.explicit, contents: Data(explicit.joined(separator: "\n").utf8))
        return paths
    }

    static func args(_ data: String, objective: String) -> [String] {
        ["train", "--model", "tiny", "--data", data, "--objective", objective, "--batch-size", "7", "--micro-batch-size", "3",
         "--steps", "3", "--lr", "1e-3", "--warmup-steps", "0", "--eval-examples", "0", "--eval-every", "0", "--quiet"]
    }

    func check(objective: String, conversations: Bool, keys: [String]) {
        let label = "implicit-\(objective)\(conversations ? "-chat" : "")"
        let data = Self.writePairs(CLI.tempDir(label), conversations: conversations)
        let implicit = CLI.trainingRows(atRanks: [1, 2], Self.args(data.implicit, objective: objective), label: label)
        let explicit = CLI.trainingRows(atRanks: [1], Self.args(data.explicit, objective: objective), label: label + "-explicit")
        XCTAssertEqual(implicit.map(\.count) + explicit.map(\.count), [3, 3, 3], label)
        XCTAssertNotEqual(implicit[0].first?["loss"] ?? .nan, implicit[0].last?["loss"] ?? .nan, "\(label): the loss never moves")
        for (i, (a, e)) in zip(implicit[0], explicit[0]).enumerated() {
            for key in keys + ["num_tokens"] {
                XCTAssertNotNil(a[key], "\(label) step \(i + 1): no \(key)")
                XCTAssertEqual(a[key], e[key], "\(label) step \(i + 1) \(key): implicit and explicit differ")
            }
        }
        for (i, (a, b)) in zip(implicit[0], implicit[1]).enumerated() {
            for key in keys {
                let x = a[key] ?? .nan, y = b[key] ?? .nan
                XCTAssertEqual(x, y, accuracy: 1e-5 * max(abs(x), 1), "\(label) step \(i + 1) \(key): -n 1 \(x) vs -n 2 \(y)")
            }
        }
    }

    func testImplicitTextPairsTrainAsTheirPromptedFormUnderDPO() {
        check(objective: "dpo", conversations: false, keys: ["loss", "rewards/margins", "logps/chosen", "logps/rejected", "grad_norm"])
    }

    func testImplicitConversationsTrainAsTheirPromptedFormUnderReward() {
        check(objective: "reward", conversations: true, keys: ["loss", "accuracy", "margin", "mean_reward", "grad_norm"])
    }

    func testARowWithoutASharedBeginningNamesItsLine() {
        let dir = CLI.tempDir("implicit-bad")
        let data = Self.writePairs(dir, conversations: false).implicit
        var lines = (try! String(contentsOfFile: data, encoding: .utf8)).split(separator: "\n").map(String.init)
        lines[4] = #"{"chosen": "yes", "rejected": "no"}"#
        try! lines.joined(separator: "\n").write(toFile: data, atomically: true, encoding: .utf8)
        let out = dir + "/out"
        let r = CLI.sftDist(Self.args(data, objective: "dpo") + ["--out", out])
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertTrue(r.stderr.contains(#"\#(data):5: chosen and rejected leave an empty prompt (without a "prompt", it is the shared beginning of "chosen" and "rejected", as TRL's extract_prompt takes it)"#), r.stderr)
        XCTAssertEqual(CLI.occurrences(of: "error:", in: r.stderr), 1, r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/model"), "nothing half-written")
    }
}
