import Foundation
import XCTest

/// Offline scored data (`--scored-data`) under real mpirun: grpo trains on pre-scored rows
/// without generation, the same losses at 1, 2 and 4 ranks; bad rows and combinations refused
/// in one line naming file:line or the setting.
final class ScoredDataCLITests: XCTestCase {
    /// Six prompts, four scored answers each (one right, reward 1), groups by prompt.
    static func writeScored(_ path: String) throws {
        var lines: [String] = []
        for (g, (a, b)) in [(1, 2), (3, 4), (2, 7), (5, 1), (6, 3), (4, 4)].enumerated() {
            for guess in [a + b, a + b + 1, a * b + 2, a + b + 10] {
                lines.append("{\"prompt\": \"add \(a) \(b) =\", \"completion\": \" \(guess)\", \"reward\": \(guess == a + b ? 1 : 0), \"group\": \"q\(g)\"}")
            }
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    }

    static func args(_ data: String, _ out: String, _ extra: [String] = [], objective: String = "grpo", steps: Int = 3) -> [String] {
        ["train", "--model", "tiny", "--data", data, "--objective", objective, "--scored-data", "--batch-size", "8",
         "--micro-batch-size", "3", "--steps", "\(steps)", "--lr", "1e-2", "--warmup-steps", "0", "--heldout-fraction", "0.1",
         "--eval-examples", "0", "--eval-every", "0", "--quiet", "--out", out] + extra
    }

    func testScoredDataTrainsTheSameAtAnyRankCount() throws {
        let dir = CLI.tempDir("scored")
        try Self.writeScored(dir + "/scored.jsonl")
        for lossType in ["grpo", "dr_grpo"] {
            var runs: [[[String: Double]]] = []
            for n in [1, 2, 4] {
                let out = dir + "/\(lossType)-n\(n)"
                let r = CLI.mpirun(n, Self.args(dir + "/scored.jsonl", out, ["--objective-arg", "loss_type=\(lossType)"]))
                XCTAssertEqual(r.status, 0, "-n \(n): \(r.all)")
                XCTAssertFalse(r.all.contains("generat"), r.all)
                runs.append(CLI.trainingRows(out))
            }
            XCTAssertEqual(runs.map(\.count), [3, 3, 3])
            guard runs.allSatisfy({ $0.count == 3 }) else { return }
            // Ratio 1 (no behaviour log-probs): the first step's ratio is exactly 1 and nothing is clipped.
            XCTAssertEqual(runs[0][0]["ratio"], 1)
            XCTAssertEqual(runs[0][0]["clip_ratio/region_mean"], 0)
            XCTAssertEqual(runs[0][0]["clip_ratio/low_mean"], 0)
            XCTAssertEqual(runs[0][0]["clip_ratio/high_mean"], 0)
            XCTAssertTrue(runs[0].allSatisfy { ($0["grad_norm"] ?? 0) > 1e-4 && $0["reward"] != nil }, "\(runs[0])")
            for (k, n) in [2, 4].enumerated() {
                for (i, (a, b)) in zip(runs[0], runs[k + 1]).enumerated() {
                    XCTAssertEqual(a["reward"], b["reward"], "\(lossType) step \(i + 1) reward, -n 1 vs -n \(n)")
                    XCTAssertEqual(a["advantage_mean"], b["advantage_mean"], "\(lossType) step \(i + 1) advantage_mean")
                    let la = a["loss"] ?? .nan, lb = b["loss"] ?? .nan
                    XCTAssertEqual(la, lb, accuracy: 1e-6 + 1e-5 * abs(la), "\(lossType) step \(i + 1) loss, -n 1 vs -n \(n)")
                    let ga = a["grad_norm"] ?? .nan, gb = b["grad_norm"] ?? .nan
                    XCTAssertEqual(ga, gb, accuracy: 1e-4 * max(ga, 1e-3), "\(lossType) step \(i + 1) grad_norm, -n 1 vs -n \(n)")
                }
            }
        }
    }

    /// Held-out scored rows: only those with a positive reward are references — exact match and
    /// held-out loss were measured against the wrong answers too (a perfect model could not
    /// reach 100 %). The file itself as --heldout: its 6 right answers of 24 rows.
    func testHeldOutScoredRowsEvaluateOnlyTheRightAnswers() throws {
        let dir = CLI.tempDir("scored-heldout")
        let data = dir + "/scored.jsonl"
        try Self.writeScored(data)
        let r = CLI.sftDist(["train", "--model", "tiny", "--data", data, "--heldout", data, "--objective", "grpo", "--scored-data",
                             "--batch-size", "8", "--steps", "1", "--warmup-steps", "0", "--eval-examples", "24", "--out", dir + "/run"])
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stdout.contains("eval (before training): held-out loss"), r.all)
        XCTAssertTrue(r.stdout.contains("of 6\n"), r.all)
        XCTAssertFalse(r.stdout.contains("% of 24"), r.all)
        XCTAssertTrue(r.stdout.contains("held-out: 6 rows of \(data) with a positive score"), r.all)
        // --eval-data sets the same way; a held-out file with no right answer says nothing is evaluated.
        let wrong = dir + "/wrong.jsonl"
        let rows = try String(contentsOfFile: data, encoding: .utf8).split(separator: "\n").filter { $0.contains("\"reward\": 0") }
        try (rows.joined(separator: "\n") + "\n").write(toFile: wrong, atomically: true, encoding: .utf8)
        let named = CLI.sftDist(["train", "--model", "tiny", "--data", data, "--heldout", wrong, "--eval-data", "s=\(data)", "--objective", "grpo",
                                 "--scored-data", "--batch-size", "8", "--steps", "1", "--warmup-steps", "0", "--eval-examples", "24",
                                 "--save-every", "1", "--out", dir + "/named"])
        XCTAssertEqual(named.status, 0, named.all)
        XCTAssertTrue(named.stderr.contains("sft-dist: warning: no held-out scored row has a positive score, so nothing is evaluated"), named.all)
        XCTAssertTrue(named.stdout.contains("s: ") && named.stdout.contains("of 6\n") && !named.stdout.contains("% of 24"), named.all)
        // A resume against another held-out set names the scored-data change as a possible reason.
        let other = CLI.sftDist(["train", "--model", "tiny", "--data", data, "--heldout", data, "--eval-data", "s=\(data)", "--objective", "grpo",
                                 "--scored-data", "--batch-size", "8", "--steps", "1", "--warmup-steps", "0", "--eval-examples", "24",
                                 "--save-every", "1", "--out", dir + "/named", "--resume", dir + "/named/checkpoints/step-000001"])
        XCTAssertEqual(other.status, 1, other.all)
        XCTAssertTrue(other.stderr.contains("since 2026-12-04 evaluates only the rows with a positive score"), other.all)
        let split = CLI.sftDist(["train", "--model", "tiny", "--data", data, "--objective", "grpo", "--scored-data", "--heldout-fraction", "0.5",
                                 "--batch-size", "8", "--steps", "1", "--warmup-steps", "0", "--eval-examples", "0", "--out", dir + "/split"])
        XCTAssertEqual(split.status, 0, split.all)
        XCTAssertTrue(split.stdout.contains("of the rows split off with seed 1234: those with a positive score"), split.all)
    }

    func testBadRowsAndSettingsAreOneLine() throws {
        let dir = CLI.tempDir("scored-bad")
        let good = "{\"prompt\": \"add 1 2 =\", \"completion\": \" 3\", \"reward\": 1, \"group\": 1}\n"
            + "{\"prompt\": \"add 1 2 =\", \"completion\": \" 4\", \"reward\": 0, \"group\": 1}\n"
        func refused(_ rows: String?, _ extra: [String], _ message: String, objective: String = "grpo", line: UInt = #line) throws {
            let data = dir + "/d.jsonl"
            try (rows ?? good).write(toFile: data, atomically: true, encoding: .utf8)
            let r = CLI.sftDist(Self.args(data, dir + "/out", extra, objective: objective))
            XCTAssertEqual(r.status, 1, r.all, line: line)
            XCTAssertTrue(r.stderr.contains(message), "expected \(message) in:\n\(r.stderr)", line: line)
            XCTAssertEqual(r.stderr.split(separator: "\n").filter { $0.contains("error") }.count, 1, r.stderr, line: line)
        }
        try refused(good + "{\"prompt\": \"add 2 2 =\", \"completion\": \" 4\"}\n", [], "d.jsonl:3: a scored row needs advantage, or reward and group")
        try refused(good + "{\"prompt\": \"add 2 2 =\", \"completion\": \" 4\", \"reward\": \"high\", \"group\": 1}\n", [],
                    "d.jsonl:3: reward must be a finite number")
        // Finite as a double, inf in float32 (a non-finite loss at step 2, or reward null).
        for key in ["reward", "advantage"] {
            try refused(good + "{\"prompt\": \"add 2 2 =\", \"completion\": \" 4\", \"\(key)\": 1e39, \"group\": 1}\n", [],
                        "d.jsonl:3: \(key) 1e+39 is beyond float32")
        }
        try refused(good + "{\"prompt\": \"add 2 2 =\", \"completion\": \" 4\", \"reward\": 1, \"group\": 2}\n", [],
                    "d.jsonl:3: group 2 has one reward")
        // A refused file prints no warning about its held-out rows above the error (it did).
        let lone = dir + "/lone.jsonl"
        try "{\"prompt\": \"a\", \"completion\": \"b\", \"reward\": 1}\n".write(toFile: lone, atomically: true, encoding: .utf8)
        let r = CLI.sftDist(Self.args(lone, dir + "/out", [], objective: "grpo"))
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertTrue(r.stderr.contains("lone.jsonl:1: reward without group"), r.all)
        XCTAssertFalse(r.stderr.contains("warning"), r.all)
        try refused(nil, ["--reward", "exact"], "scored_data takes the rewards of --data's rows")
        try refused(nil, [], "--scored-data trains objective grpo on the rows of --data as scored samples, not objective chord", objective: "chord")
        // Without --data: the built-in tasks are not a file of scored rows.
        let builtin = CLI.sftDist(["train", "--scored-data", "--objective", "grpo", "--steps", "2", "--out", dir + "/no-data"])
        XCTAssertEqual(builtin.status, 1, builtin.all)
        XCTAssertTrue(builtin.stderr.contains("--scored-data trains on scored samples: give --data FILE"), builtin.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/no-data"))
    }
}

/// kill -9 of a 2-rank `--scored-data` job after step 4 (checkpoints every step), then
/// `--resume latest`: the losses, rewards and advantages of the uninterrupted run (the batches
/// are the uniform sampler's, a function of (seed, step); the optimizer and the step from the
/// checkpoint).
extension GRPOCLITests {
    func testScoredDataKillAndResumeLatest() throws {
        let dir = CLI.tempDir("scored-resume")
        try ScoredDataCLITests.writeScored(dir + "/scored.jsonl")
        // No generation: of the rollout metrics, only the rows' reward mean.
        try assertKillAndResumeLatest(objective: "scored-grpo", extraKeys: ["advantage_mean"], rolloutKeys: ["reward"], command: { outAndSave in
            ScoredDataCLITests.args(dir + "/scored.jsonl", outAndSave[1], Array(outAndSave.dropFirst(2)), steps: 6)
        })
    }
}
