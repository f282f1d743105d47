import Foundation
import XCTest

/// `generate --num-return-sequences N` (transformers' name): N sampled completions per
/// prompt, prompt by prompt, each from its own stream — sample 0 the stream a single
/// completion uses, so the first row of each prompt is what N = 1 prints — and the same
/// rows at any number of ranks.
final class NumReturnSequencesTests: XCTestCase {
    typealias Row = (prompt: String, sample: Int?, ids: [Int])

    static func rows(_ stdout: String) -> [Row] {
        stdout.split(separator: "\n").compactMap { line in
            guard let o = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any],
                  let p = o["prompt"] as? String, let ids = o["ids"] as? [Int] else { return nil }
            return (p, o["sample"] as? Int, ids)
        }
    }

    func testSamplesPerPromptInOrderTheFirstAsAloneTheSameAtAnyRankCount() throws {
        let dir = CLI.tempDir("num-return")
        let prompts = ["add 1 2 =", "copy ab", "mul 3 4 ="]
        try prompts.map { "{\"prompt\": \"\($0)\"}" }.joined(separator: "\n").write(toFile: dir + "/p.jsonl", atomically: true, encoding: .utf8)
        let common = ["generate", "--model", "tiny", "--prompts", dir + "/p.jsonl", "--max-new-tokens", "6", "--temperature", "1",
                      "--seed", "7", "--json"]
        let one = CLI.sftDist(common, seconds: 60)
        XCTAssertEqual(one.status, 0, one.all)
        let many = CLI.sftDist(common + ["--num-return-sequences", "3"], seconds: 60)
        XCTAssertEqual(many.status, 0, many.all)
        let single = Self.rows(one.stdout), rows = Self.rows(many.stdout)
        XCTAssertEqual(single.count, 3, one.stdout)
        XCTAssertEqual(rows.count, 9, many.stdout)
        guard single.count == 3, rows.count == 9 else { return }
        XCTAssertTrue(single.allSatisfy { $0.sample == nil }, "no sample field at N = 1: \(one.stdout)")
        XCTAssertEqual(rows.map(\.prompt), prompts.flatMap { Array(repeating: $0, count: 3) })
        XCTAssertEqual(rows.map(\.sample), Array(repeating: [0, 1, 2] as [Int?], count: 3).flatMap { $0 })
        for i in 0..<3 {
            XCTAssertEqual(rows[3 * i].ids, single[i].ids, "sample 0 of prompt \(i) is the completion N = 1 gives")
        }
        // Each sample draws from its own stream: 6 tokens from tiny's random weights at
        // temperature 1 do not repeat one another.
        let distinct = Set(rows.map { "\($0.prompt)|\($0.ids)" }).count
        XCTAssertEqual(distinct, 9, "every completion different: \(many.stdout)")

        for n in [2, 3] {
            let r = CLI.mpirun(n, common + ["--num-return-sequences", "3"], seconds: 120)
            XCTAssertEqual(r.status, 0, r.all)
            XCTAssertEqual(r.stdout, many.stdout, "-n \(n) prints what -n 1 prints")
        }

        // One --prompt with N > 1 is not streamed: N lines of prompt and completion.
        let text = CLI.sftDist(["generate", "--model", "tiny", "--prompt", "copy ab", "--max-new-tokens", "3", "--temperature", "1",
                                "--num-return-sequences", "2", "--stop", "\\n"], seconds: 60)
        XCTAssertEqual(text.status, 0, text.all)
        XCTAssertEqual(text.stdout.components(separatedBy: "\n").filter { $0.hasPrefix("copy ab") }.count, 2, text.stdout)
    }

    /// As transformers refuses it for greedy decoding: N copies of the greedy answer.
    func testGreedyAndOutOfRangeCountsAreRefused() {
        for (args, needle) in [(["--num-return-sequences", "2"], "--num-return-sequences 2 at --temperature 0"),
                               (["--num-return-sequences", "0", "--temperature", "1"], "--num-return-sequences must be an integer in 1…4096")] {
            let r = CLI.sftDist(["generate", "--model", "tiny", "--prompt", "ab"] + args, seconds: 60)
            XCTAssertEqual(r.status, 1, r.all)
            XCTAssertTrue(r.stderr.contains(needle), "\(needle) in: \(r.all)")
            XCTAssertEqual(CLI.occurrences(of: "error", in: r.stderr), 1, r.stderr)
        }
    }
}
