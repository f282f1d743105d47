import Foundation
import XCTest

/// `--objective dpo` end to end: the same per-step losses and reward means under real
/// `mpirun -n 1` and `-n 2` (pairs dealt whole, normalised by the step's pair count), and a bad
/// pair row naming its file:line with exit code 1 (or skipped and counted).
final class DPOCLITests: XCTestCase {
    /// Pairs of arithmetic prompts: the right sum chosen, a wrong one rejected; answers of
    /// different lengths, so pairs pack and pad unevenly.
    static func writePairs(_ dir: String, count: Int = 40, bad: [Int: String] = [:]) -> String {
        var lines: [String] = []
        for i in 0..<count {
            let a = i * 7 % 50, b = i * 13 % 30
            lines.append(bad[i + 1] ?? #"{"prompt": "\#(a)+\#(b)=", "chosen": "\#(a + b)", "rejected": "\#(a + b + 1 + i % 9)\#(i % 2 == 0 ? "0" : "")"}"#)
        }
        let path = dir + "/pairs.jsonl"
        FileManager.default.createFile(atPath: path, contents: Data(lines.joined(separator: "\n").utf8))
        return path
    }

    func testDPOIsRankCountInvariantUnderMpirun() throws {
        let data = Self.writePairs(CLI.tempDir("dpo-data"))
        // 7 pairs a step: 4/3 pairs on two ranks; micro-batches of 3 rows hold two pairs whole, so
        // the micro-batches differ between -n 1 and -n 2 (units 0-1, 2-3, 4-5, 6 against 0-2, 4-6 and 1-3, 5).
        let args = ["train", "--model", "tiny", "--data", data, "--objective", "dpo", "--objective-arg", "beta=0.5",
                    "--batch-size", "7", "--micro-batch-size", "3", "--steps", "4", "--lr", "1e-2", "--warmup-steps", "0",
                    "--eval-examples", "0", "--eval-every", "0", "--quiet", "--checksum-every", "2"]
        let runs = CLI.trainingRows(atRanks: [1, 2], args, label: "dpo", seconds: 90)
        XCTAssertEqual(runs[0].count, 4)
        XCTAssertEqual(runs[1].count, 4)
        // Step 1: the policy is the reference, so every pair's loss is log 2.
        XCTAssertEqual(runs[0].first?["loss"] ?? .nan, log(2), accuracy: 1e-6)
        XCTAssertNotEqual(runs[0].last?["loss"] ?? .nan, log(2), accuracy: 1e-4, "the loss never moves")
        for (i, (a, b)) in zip(runs[0], runs[1]).enumerated() {
            for key in ["loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "grad_norm",
                        "logps/chosen", "logps/rejected", "logits/chosen", "logits/rejected", "mean_token_accuracy", "entropy"] {
                let x = a[key] ?? .nan, y = b[key] ?? .nan
                // A reward is β·(log π − log π_ref) of one sequence, a difference of log-prob sums
                // of ≈ 17 here: its float32 noise from the ranks' summation order is absolute
                // (≈ 1e-6 seen), not relative to the reward, which may be near 0.
                let scale = (key.hasPrefix("rewards/") && key != "rewards/accuracies") || key.hasPrefix("logits/")
                    ? max(abs(x), 1) : max(abs(x), 1e-3)
                XCTAssertEqual(x, y, accuracy: 1e-5 * scale, "step \(i + 1) \(key): -n 1 \(x) vs -n 2 \(y)")
            }
        }
    }

    func testBadPairRowNamesItsLineOrIsSkipped() throws {
        let dir = CLI.tempDir("dpo-bad")
        let data = Self.writePairs(dir, bad: [3: #"{"prompt": "1+1=", "chosen": "2", "rejected": "2"}"#])
        let base = ["train", "--model", "tiny", "--data", data, "--objective", "dpo", "--steps", "2", "--batch-size", "2",
                    "--micro-batch-size", "2", "--eval-examples", "0", "--eval-every", "0", "--quiet"]
        let out = dir + "/out"
        let r = CLI.sftDist(base + ["--out", out])
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertTrue(r.stderr.contains("\(data):3: chosen and rejected are identical"), r.stderr)
        XCTAssertEqual(CLI.occurrences(of: "error:", in: r.stderr), 1, r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/model"), "nothing half-written")

        let skipped = CLI.sftDist(base.filter { $0 != "--quiet" } + ["--out", dir + "/out-skip", "--skip-bad-lines"])
        XCTAssertEqual(skipped.status, 0, skipped.all)
        let rows = CLI.trainingRows(dir + "/out-skip")
        XCTAssertEqual(rows.count, 2)
        XCTAssertTrue(skipped.all.contains("skipped 1 bad line (first: \(data):3: chosen and rejected are identical)"), skipped.all)
    }

    /// A run resumed from its step-2 checkpoint continues exactly: the pair order is a function
    /// of (seed, step), and the reference stays the initial weights, not the checkpoint's.
    func testDPOResumesExactly() throws {
        let dir = CLI.tempDir("dpo-resume")
        let data = Self.writePairs(dir)
        let args = ["train", "--model", "tiny", "--data", data, "--objective", "dpo", "--batch-size", "4", "--micro-batch-size", "3",
                    "--steps", "4", "--lr", "1e-2", "--warmup-steps", "0", "--eval-examples", "0", "--eval-every", "0", "--quiet"]
        XCTAssertEqual(CLI.sftDist(args + ["--out", dir + "/straight"]).status, 0)
        XCTAssertEqual(CLI.sftDist(args + ["--out", dir + "/saved", "--save-every", "2"]).status, 0)
        let r = CLI.sftDist(args + ["--out", dir + "/resumed", "--resume", dir + "/saved/checkpoints/step-000002"])
        XCTAssertEqual(r.status, 0, r.all)
        let straight = CLI.losses(dir + "/straight"), resumed = CLI.losses(dir + "/resumed")
        XCTAssertEqual(straight.count, 4)
        XCTAssertEqual(Array(resumed.suffix(2)), Array(straight.suffix(2)), "steps 3-4 after resuming at step 2")
    }

    func testDPOWithoutPairDataIsRefused() {
        let r = CLI.sftDist(["train", "--model", "tiny", "--objective", "dpo", "--steps", "1", "--out", CLI.tempDir("dpo-builtin"), "--quiet"])
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertTrue(r.stderr.contains("objective dpo trains on preference pairs"), r.stderr)
    }
}
