import Foundation
import XCTest

/// ReLIFT end to end under real mpirun (GRPOCLITests' warm start and rollouts, `--objective
/// relift`, 2 demonstrations per SFT step, 7 steps): the buffer, the interleaved SFT steps,
/// rewards and losses identical at 1, 2 and 4 ranks; kill -9 with a non-empty buffer and
/// `--resume latest` continues the same steps; bad input refused in one line.
extension GRPOCLITests {
    static let reliftKeys = ["relift_sft_step", "relift_buffer", "relift_buffered", "relift_sft_steps"]

    static func relift(_ extra: [String]) -> [String] {
        var args = grpo(["--objective-arg", "sft_data_size=2"] + extra, objective: "relift")
        args[args.firstIndex(of: "--steps")! + 1] = "7"
        return args
    }

    func testReLIFTBufferAndSFTStepsAreRankCountInvariant() throws {
        var runs: [[[String: Double]]] = []
        for n in [1, 2, 4] {
            let out = CLI.tempDir("relift-n\(n)")
            let r = CLI.mpirun(n, Self.relift(["--out", out]), seconds: 240)
            XCTAssertEqual(r.status, 0, "-n \(n): \(r.all)")
            runs.append(CLI.trainingRows(out))
        }
        XCTAssertEqual(runs.map(\.count), [7, 7, 7])
        guard runs.allSatisfy({ $0.count == 7 }) else { return }
        let sft = runs[0].filter { $0["relift_sft_step"] == 1 }
        XCTAssertFalse(sft.isEmpty, "no SFT step: \(runs[0].map { $0["relift_buffer"] ?? -1 })")
        XCTAssertTrue(sft.allSatisfy { $0["reward"] == nil && $0["expert_sequences"] == 2 && ($0["grad_norm"] ?? 0) > 0 })
        // `entropy` is the rollouts' series: an SFT step's nll does not add the demonstrations'.
        XCTAssertTrue(sft.allSatisfy { $0["entropy"] == nil }, "\(sft)")
        XCTAssertTrue(runs[0].contains { $0["relift_sft_step"] == 0 && $0["entropy"] != nil })
        XCTAssertTrue(runs[0].contains { $0["relift_sft_step"] == 0 && ($0["relift_buffered"] ?? 0) > 0 })
        Self.assertLogged(Self.rolloutKeys + Self.reliftKeys, in: runs[0], "relift -n 1")
        for (k, n) in [2, 4].enumerated() {
            for (i, (a, b)) in zip(runs[0], runs[k + 1]).enumerated() {
                for key in Self.rolloutKeys + Self.reliftKeys {
                    XCTAssertEqual(a[key], b[key], "relift step \(i + 1) \(key), -n 1 vs -n \(n)")
                }
                let la = a["loss"] ?? .nan, lb = b["loss"] ?? .nan
                XCTAssertEqual(la, lb, accuracy: 1e-6 + 1e-5 * abs(la), "relift step \(i + 1) loss, -n 1 vs -n \(n)")
                let ga = a["grad_norm"] ?? .nan, gb = b["grad_norm"] ?? .nan
                XCTAssertEqual(ga, gb, accuracy: 1e-4 * max(ga, 1e-3), "relift step \(i + 1) grad_norm, -n 1 vs -n \(n)")
            }
        }
    }

    /// The uninterrupted run shows after which step the buffer holds rows that a later SFT step
    /// takes; the run killed right after that step's checkpoint resumes with that buffer.
    func testReLIFTKillWithAFullBufferAndResumeLatest() throws {
        try assertKillAndResumeLatest(objective: "relift", extraKeys: Self.reliftKeys, command: { Self.relift($0) }) { a in
            guard let sftAt = a.indices.last(where: { a[$0]["relift_sft_step"] == 1 }),
                  let keep = (0..<sftAt).last(where: { (a[$0]["relift_buffer"] ?? 0) > 0 }) else { return nil }
            return keep + 1   // steps are 1-based: the checkpoint after row `keep`
        }
    }

    func testReLIFTBadInputIsOneLine() throws {
        let dir = CLI.tempDir("relift-bad")
        let prompts = dir + "/prompts.jsonl"
        try "{\"prompt\": \"add 1 2 =\", \"completion\": \" 3\"}\n".write(toFile: prompts, atomically: true, encoding: .utf8)
        let base = ["train", "--model", "tiny", "--objective", "relift", "--reward", "exact", "--rollouts", "2", "--batch-size", "4",
                    "--steps", "1", "--eval-examples", "0", "--eval-every", "0", "--quiet", "--out", dir + "/out"]
        for (extra, message) in [(["--prompts", prompts], "objective relift trains on the demonstrations of the prompts it fails"),
                                 (["--objective-arg", "sft_data_size=-1"], "sft_data_size must be an integer in 0…1048576"),
                                 (["--objective-arg", "loss_type=sum"], "objective relift: loss_type must be one of")] {
            let r = CLI.sftDist(base + extra)
            XCTAssertEqual(r.status, 1, r.all)
            XCTAssertTrue(r.stderr.contains(message), "expected \(message) in:\n\(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").filter { $0.contains("error") }.count, 1, r.stderr)
        }
    }
}
