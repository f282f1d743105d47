import Foundation
import XCTest

/// `--mask-truncated-completions` (TRL's `mask_truncated_completions`, DAPO's overlong
/// filtering): a rollout that reached max_completion_length without an end token keeps its
/// reward and advantage but trains no token, so a step's loss tokens are those of the rollouts
/// that stopped. The aggregation against TRL's is GRPOReferenceTests' (the masked rollout case).
final class MaskTruncatedCLITests: XCTestCase {
    /// Completions of 4 tokens at most: the warm model's answers (2–4 characters and the end
    /// token) are cut now and then, so steps hold both kinds.
    static func args(_ extra: [String]) -> [String] {
        ["train", "--model", GRPOCLITests.warm, "--objective", "grpo", "--reward", "task", "--reward", "format=0.1",
         "--rollouts", "4", "--batch-size", "16", "--micro-batch-size", "3", "--steps", "4", "--max-completion-length", "4",
         "--lr", "3e-3", "--warmup-steps", "0", "--eval-every", "0", "--eval-examples", "0", "--rollout-temperature", "1.5"] + extra
    }

    /// The loss tokens of a step whose rollouts that stopped are `mean_terminated_length` long
    /// on average (the end token counted, and trained), `batch` rollouts in all.
    static func terminatedTokens(_ row: [String: Double], batch: Double) -> Double {
        (row["completions/mean_terminated_length"] ?? .nan) * (1 - (row["completions/clipped_ratio"] ?? .nan)) * batch
    }

    func testTruncatedRolloutsTrainNoTokenAtAnyRankCountAndAfterAResume() throws {
        let masked = Self.args(["--mask-truncated-completions", "--steps-per-generation", "2", "--save-every", "1"])
        let runs = CLI.trainingRows(atRanks: [1, 2], masked, label: "mask-truncated", seconds: 240)
        let plain = CLI.trainingRows(atRanks: [1], Self.args(["--steps-per-generation", "2"]), label: "mask-truncated-off", seconds: 240)[0]
        guard runs.allSatisfy({ $0.count == 4 }), plain.count == 4 else { return XCTFail("\(runs) \(plain)") }
        // Both kinds of rollout in the run, and the same rollouts with the flag and without it
        // at the first step (its weights are the same).
        XCTAssertTrue(runs[0].contains { ($0["completions/clipped_ratio"] ?? 0) > 0 && ($0["completions/clipped_ratio"] ?? 1) < 1 }, "\(runs[0])")
        XCTAssertEqual(runs[0][0]["completions/mean_length"], plain[0]["completions/mean_length"])
        for (row, off) in zip(runs[0], plain) {
            let step = Int(row["step"]!)
            XCTAssertEqual(row["loss_tokens"] ?? .nan, Self.terminatedTokens(row, batch: 16), accuracy: 1e-6, "step \(step): the rollouts that stopped")
            XCTAssertEqual(off["loss_tokens"] ?? .nan, (off["completions/mean_length"] ?? .nan) * 16, accuracy: 1e-6, "step \(step) without the flag: every rollout")
        }
        XCTAssertLessThan(runs[0][0]["loss_tokens"] ?? .nan, plain[0]["loss_tokens"] ?? .nan)
        // -n 2 draws the same rollouts and masks the same ones.
        for (a, b) in zip(runs[0], runs[1]) {
            let step = Int(a["step"]!)
            for key in ["loss_tokens", "reward", "completions/clipped_ratio"] { XCTAssertEqual(a[key], b[key], "step \(step) \(key)") }
            let la = a["loss"] ?? .nan
            XCTAssertEqual(la, b["loss"] ?? .nan, accuracy: 1e-6 + 1e-4 * abs(la), "step \(step) loss, -n 1 vs -n 2")
        }
        // Resumed in the middle of a generation (steps 3 and 4), the checkpointed rollouts keep their masks.
        let out = CLI.tempDir("mask-truncated-resumed")
        let r = CLI.mpirun(2, masked + ["--out", out, "--resume", FileManager.default.temporaryDirectory.path + "/sft-dist-tests-\(getpid())/mask-truncated-2/checkpoints/step-000003"], seconds: 240)
        XCTAssertEqual(r.status, 0, r.all)
        let resumed = CLI.trainingRows(out)
        XCTAssertEqual(resumed.map { $0["step"] ?? -1 }, [1, 2, 3, 4])
        for (a, b) in zip(resumed.suffix(1), runs[1].suffix(1)) {
            for key in ["loss", "loss_tokens", "grad_norm"] { XCTAssertEqual(a[key], b[key], "step \(Int(a["step"]!)) \(key), resumed vs uninterrupted") }
        }
    }

    /// A cut hybrid rollout: UFT's keeps its hint's likelihood term, which does not read the
    /// advantage (a review found the hints masked too); Prefix-RFT's −A·π/sg(π) prefix term goes
    /// with the rollout (a second review: a cut rollout's low advantage pushed the demonstration
    /// down). The first step draws the same rollouts with the flag and without it.
    func testATruncatedHybridKeepsOnlyAHintThatIgnoresTheAdvantage() throws {
        let cases: [(String, [String])] = [
            ("uft", ["--objective-arg", "hint_steps=4", "--objective-arg", "upper=0.6", "--objective-arg", "lower=0.3"]),
            ("prefix-rft", ["--scale-rewards", "none", "--objective-arg", "hybrid=2"])]
        for (objective, extra) in cases {
            var args = GRPOCLITests.grpo(extra, objective: objective)
            args[args.firstIndex(of: "--max-completion-length")! + 1] = "2"
            let runs = [CLI.trainingRows(atRanks: [1], args, label: "mask-\(objective)-off")[0],
                        CLI.trainingRows(atRanks: [1], args + ["--mask-truncated-completions"], label: "mask-\(objective)-on")[0]]
            guard runs.allSatisfy({ !$0.isEmpty }) else { return XCTFail("\(objective): \(runs)") }
            let (off, on) = (runs[0][0], runs[1][0])
            XCTAssertGreaterThan(on["completions/clipped_ratio"] ?? 0, 0, "\(objective): some rollouts are cut at 2 tokens: \(on)")
            XCTAssertGreaterThan(off["revealed_tokens"] ?? 0, 0, objective)
            XCTAssertLessThan(on["loss_tokens"] ?? .nan, off["loss_tokens"] ?? .nan, "\(objective): the cut continuations train nothing")
            if objective == "uft" {
                XCTAssertEqual(on["revealed_tokens"], off["revealed_tokens"], "uft: the hints stay trained")
            } else {
                XCTAssertLessThan(on["revealed_tokens"] ?? .nan, off["revealed_tokens"] ?? .nan, "prefix-rft: a cut hybrid's prefix goes too")
            }
        }
    }
}
