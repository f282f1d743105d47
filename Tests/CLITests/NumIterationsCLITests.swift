import Foundation
import XCTest

/// `--num-iterations μ` (TRL's num_iterations, GRPO's μ): a generation is trained on μ times,
/// its `--steps-per-generation` slices in order on each pass, as TRL's GRPOTrainer schedules it
/// (a generation every steps_per_generation × num_iterations steps; step t takes slice
/// t mod steps_per_generation): the same at `mpirun -n 1` and `-n 2` and after a resume in
/// the middle of the second pass.
final class NumIterationsCLITests: XCTestCase {
    static let rolloutFigures = ["reward", "reward_std", "rewards/numeric/mean", "frac_reward_zero_std", "completions/mean_length"]

    func testEachGenerationIsTrainedOnNumIterationsTimesInOrder() throws {
        let args = GRPOCLITests.grpo(["--steps", "8", "--steps-per-generation", "2", "--num-iterations", "2", "--save-every", "3"])
        var runs: [[[String: Double]]] = []
        var second = ""
        for n in [1, 2] {
            let out = CLI.tempDir("num-iterations-n\(n)")
            let r = CLI.mpirun(n, args + ["--out", out], seconds: 240)
            XCTAssertEqual(r.status, 0, "-n \(n): \(r.all)")
            runs.append(CLI.trainingRows(out))
            second = out
        }
        let resumed = CLI.tempDir("num-iterations-resumed")
        let r = CLI.mpirun(2, args + ["--out", resumed, "--resume", second + "/checkpoints/step-000003"], seconds: 240)
        XCTAssertEqual(r.status, 0, r.all)
        runs.append(CLI.trainingRows(resumed))
        XCTAssertEqual(runs.map(\.count), [8, 8, 8])
        guard runs.allSatisfy({ $0.count == 8 }) else { return }
        let a = runs[0]
        // Generations at steps 1 and 5 only (2 slices × 2 passes each).
        XCTAssertEqual(a.map { ($0["generate_s"] ?? 0) > 0 }, [true, false, false, false, true, false, false, false])
        // Step t trains on slice (t − 1) mod 2 of its generation: steps 3 and 4 repeat 1 and 2.
        for (first, again) in [(0, 2), (1, 3), (4, 6), (5, 7)] {
            for key in Self.rolloutFigures {
                XCTAssertNotNil(a[first][key], "step \(first + 1): \(key)")
                XCTAssertEqual(a[first][key], a[again][key], "step \(again + 1) \(key) repeats step \(first + 1)'s")
            }
        }
        XCTAssertNotEqual(a[0]["reward"], a[4]["reward"], "a new generation at step 5")
        // num_tokens counts a generation once, as TRL's: the second pass adds nothing.
        let counted = a.map { Int($0["num_tokens"] ?? -1) }
        XCTAssertEqual([counted[2], counted[3]], [counted[1], counted[1]], "\(counted)")
        XCTAssertEqual([counted[6], counted[7]], [counted[5], counted[5]], "\(counted)")
        XCTAssertLessThan(counted[1], counted[5], "\(counted)")
        // The second pass is off-policy: its ratio moved from 1 after two updates.
        XCTAssertEqual(a[0]["ratio"] ?? .nan, 1, accuracy: 1e-5)
        XCTAssertGreaterThan(abs((a[2]["ratio"] ?? 1) - 1), 1e-5, "step 3's ratio")
        for (k, other) in runs.dropFirst().enumerated() {
            let label = k == 0 ? "-n 2" : "-n 2 resumed at step 3"
            for (i, (x, y)) in zip(a, other).enumerated() where k == 0 || i >= 3 {
                for key in Self.rolloutFigures { XCTAssertEqual(x[key], y[key], "step \(i + 1) \(key), -n 1 vs \(label)") }
                let lx = x["loss"] ?? .nan
                XCTAssertEqual(lx, y["loss"] ?? .nan, accuracy: 1e-6 + 1e-5 * abs(lx), "step \(i + 1) loss, -n 1 vs \(label)")
            }
        }
    }

    /// Read only where rollouts are sampled, like the other rollout keys.
    func testNumIterationsIsRefusedWithoutASampler() {
        let r = CLI.sftDist(["train", "--model", "tiny", "--num-iterations", "2", "--dry-run"])
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertTrue(r.stderr.contains("--num-iterations is read by the objectives that sample rollouts"), r.stderr)
    }
}
