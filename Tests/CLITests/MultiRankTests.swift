import Foundation
import XCTest

/// Real mpirun: results must not depend on the number of ranks, and one rank's failure
/// must end the whole job with one message, never a hang.
final class MultiRankTests: XCTestCase {
    let recipe = ["train", "--model", "tiny", "--steps", "12", "--batch-size", "8", "--micro-batch-size", "2",
                  "--lr", "3e-3", "--warmup-steps", "2", "--eval-examples", "8", "--max-new-tokens", "4",
                  "--checksum-every", "4", "--quiet"]

    func assertSameLosses(_ a: [Double], _ b: [Double], _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, 12, "\(label): reference run logged \(a.count) steps", file: file, line: line)
        XCTAssertEqual(a.count, b.count, "\(label): step counts differ", file: file, line: line)
        for (i, (x, y)) in zip(a, b).enumerated() {
            XCTAssertLessThanOrEqual(abs(x - y), 1e-5 * abs(x), "\(label): step \(i + 1) loss \(x) vs \(y)", file: file, line: line)
        }
    }

    func testLossesIdenticalForOneTwoAndFourRanks() {
        var runs: [[Double]] = []
        for n in [1, 2, 4] {
            let out = CLI.tempDir("ranks\(n)")
            let r = CLI.mpirun(n, recipe + ["--out", out])
            XCTAssertEqual(r.status, 0, "mpirun -n \(n) failed:\n\(r.all)")
            runs.append(CLI.losses(out))
        }
        assertSameLosses(runs[0], runs[1], "-n 1 vs -n 2")
        assertSameLosses(runs[0], runs[2], "-n 1 vs -n 4")
        XCTAssertLessThan(runs[0].last!, runs[0].first!, "loss should fall over 12 steps")
    }

    /// The closing list of held-out answers is the first candidates' under any rank count (it
    /// showed rank 0's share only: every other candidate under -n 2).
    func testClosingSamplesAreTheSameForOneAndTwoRanks() {
        var lists: [[Substring]] = []
        for n in [1, 2] {
            let r = CLI.mpirun(n, ["train", "--model", "tiny", "--steps", "2", "--batch-size", "4", "--eval-every", "0",
                                   "--eval-examples", "8", "--max-new-tokens", "4", "--out", CLI.tempDir("samples\(n)")])
            XCTAssertEqual(r.status, 0, r.all)
            lists.append(r.stdout.split(separator: "\n").filter { $0.hasPrefix("  \"") && $0.contains("(expected ") })
        }
        XCTAssertEqual(lists[0].count, 4, "\(lists[0])")
        XCTAssertEqual(lists[0], lists[1])
    }

    func testPackedLossesIdenticalForOneAndThreeRanks() {
        let a = CLI.tempDir("pack1"), b = CLI.tempDir("pack3")
        let r1 = CLI.mpirun(1, recipe + ["--packing", "--out", a])
        let r3 = CLI.mpirun(3, recipe + ["--packing", "--out", b])
        XCTAssertEqual(r1.status, 0, r1.all)
        XCTAssertEqual(r3.status, 0, r3.all)
        assertSameLosses(CLI.losses(a), CLI.losses(b), "packed -n 1 vs -n 3")
    }

    /// A node-local copy of the data that is corrupt on one rank only: that rank's message,
    /// printed once, and the job ends with a non-zero status.
    func testBadDataOnOneRankAbortsTheJobWithOneMessage() throws {
        let good = CLI.tempDir("node0"), bad = CLI.tempDir("node1"), out = CLI.tempDir("badrank-out")
        let line = #"{"prompt": "add 1 2 =", "completion": " 3"}"#
        try String(repeating: line + "\n", count: 20).write(toFile: good + "/data.jsonl", atomically: true, encoding: .utf8)
        try (String(repeating: line + "\n", count: 2) + "{\"prompt\": \"x\", \"completion\": \n" + line + "\n")
            .write(toFile: bad + "/data.jsonl", atomically: true, encoding: .utf8)
        let args = recipe + ["--data", "data.jsonl", "--out", out + "/run"]
        let r = CLI.mpirunEach([(args, good), (args, bad)], seconds: 60)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertNotEqual(r.status, 124, "timed out: the job hung\n\(r.all)")
        XCTAssertEqual(CLI.occurrences(of: "data.jsonl:3: invalid JSON", in: r.all), 1, r.all)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/run/model"), "nothing half-written")
    }

    /// Valid but different copies on one node: a truncated `--data`, or an `--eval-data` set
    /// with other rows. Each is refused naming the input and the rank (they trained and
    /// evaluated silently: rank 0 picks indices, each rank looks them up in its own copy).
    func testDifferentCopiesOfAnInputOnOneRankAreRefused() throws {
        let good = CLI.tempDir("copy0"), bad = CLI.tempDir("copy1"), out = CLI.tempDir("copies-out")
        func rows(_ n: Int, _ offset: Int) -> String {
            (0..<n).map { #"{"prompt": "add \#($0 + offset) 2 =", "completion": " \#($0 + offset + 2)"}"# }.joined(separator: "\n") + "\n"
        }
        try rows(40, 0).write(toFile: good + "/data.jsonl", atomically: true, encoding: .utf8)
        try rows(30, 0).write(toFile: bad + "/data.jsonl", atomically: true, encoding: .utf8)
        for dir in [good, bad] { try rows(10, 0).write(toFile: dir + "/set.jsonl", atomically: true, encoding: .utf8) }
        let args = recipe + ["--data", "data.jsonl", "--eval-data", "s=set.jsonl", "--out", out + "/run"]
        let r = CLI.mpirunEach([(args, good), (args, bad)], seconds: 60)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertNotEqual(r.status, 124, "timed out: the job hung\n\(r.all)")
        XCTAssertEqual(CLI.occurrences(of: "sft-dist: error (rank 1): --data data.jsonl: this rank read other examples than rank 0 (", in: r.all), 1, r.all)

        try rows(40, 0).write(toFile: bad + "/data.jsonl", atomically: true, encoding: .utf8)
        try rows(10, 50).write(toFile: bad + "/set.jsonl", atomically: true, encoding: .utf8)
        let e = CLI.mpirunEach([(args, good), (args, bad)], seconds: 60)
        XCTAssertNotEqual(e.status, 0)
        XCTAssertEqual(CLI.occurrences(of: "--eval-data s=set.jsonl: this rank read other examples than rank 0 (the same number, 10, with other tokens)", in: e.all), 1, e.all)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/run/model"), "nothing half-written")
    }

    func testRecipeThatDiffersBetweenRanksIsRefused() {
        let out = CLI.tempDir("differ")
        let r = CLI.mpirunEach([(recipe + ["--lr", "0.001", "--out", out], out), (recipe + ["--lr", "0.002", "--out", out], out)], seconds: 60)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertNotEqual(r.status, 124, "timed out: the job hung\n\(r.all)")
        XCTAssertEqual(CLI.occurrences(of: "the recipe differs between ranks: key \"lr\"", in: r.all), 1, r.all)
    }

    func testEvalScoreAndGenerateAreShardedButRankCountInvariant() throws {
        let out = CLI.tempDir("shard-train")
        XCTAssertEqual(CLI.sftDist(recipe + ["--out", out]).status, 0)
        let model = out + "/model", data = out + "/data/heldout.jsonl"
        let e1 = CLI.mpirun(1, ["eval", "--model", model, "--data", data, "--examples", "10", "--json"])
        let e2 = CLI.mpirun(2, ["eval", "--model", model, "--data", data, "--examples", "10", "--json"])
        XCTAssertEqual(e1.status, 0, e1.all)
        let j1 = try JSONSerialization.jsonObject(with: Data(e1.stdout.utf8)) as! [String: Any]
        let j2 = try JSONSerialization.jsonObject(with: Data(e2.stdout.utf8)) as! [String: Any]
        XCTAssertEqual((j1["eval_loss"] as! Double), (j2["eval_loss"] as! Double), accuracy: 1e-5)
        XCTAssertEqual(j1["eval_accuracy"] as? Double, j2["eval_accuracy"] as? Double)
        let s1 = CLI.mpirun(1, ["score", "--model", model, "--data", data])
        let s3 = CLI.mpirun(3, ["score", "--model", model, "--data", data])
        XCTAssertEqual(s1.status, 0, s1.all)
        XCTAssertEqual(s1.stdout, s3.stdout, "score output must be the same, in input order, for any rank count")
        let g1 = CLI.mpirun(1, ["generate", "--model", model, "--prompts", data, "--temperature", "1", "--seed", "3", "--json", "--max-new-tokens", "5"])
        let g2 = CLI.mpirun(2, ["generate", "--model", model, "--prompts", data, "--temperature", "1", "--seed", "3", "--json", "--max-new-tokens", "5"])
        XCTAssertEqual(g1.status, 0, g1.all)
        XCTAssertEqual(g1.stdout, g2.stdout)
    }
}
