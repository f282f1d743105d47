import Foundation
import XCTest

/// `--neftune-noise-alpha` (NEFTune, arXiv 2310.05914; transformers' `neftune_noise_alpha`):
/// the step-1 loss equals a real TRL SFTTrainer step's whose noise hook draws the same streams
/// (Fixtures/hf/expected/neftune-trl.json, scripts/neftune_references.py); the noise is each
/// sequence's own, so the losses do not change with the rank count, padding or packing; evaluation
/// sees none; a resumed run goes on bit for bit; objectives with a ratio to another forward refuse it.
final class NEFTuneCLITests: XCTestCase {
    let tiny = ["train", "--model", "tiny", "--steps", "3", "--batch-size", "8", "--lr", "3e-3", "--warmup-steps", "0",
                "--eval-every", "0", "--eval-examples", "0", "--quiet"]

    func run(_ ranks: Int, _ args: [String], _ label: String) -> String {
        let out = CLI.tempDir("neftune-\(label)")
        let r = ranks == 1 ? CLI.sftDist(args + ["--out", out]) : CLI.mpirun(ranks, args + ["--out", out])
        XCTAssertEqual(r.status, 0, "\(label):\n\(r.all)")
        return out
    }

    func testStepLossEqualsTRLsWithTheSameNoise() throws {
        let path = HFModelCLITests.fixtures + "/expected/neftune-trl.json"
        let file = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        let cases = try XCTUnwrap(file["cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 4)
        for (i, c) in cases.enumerated() {
            let model = try XCTUnwrap(c["model"] as? String), alpha = try XCTUnwrap(c["neftune_noise_alpha"] as? Double)
            let want = try XCTUnwrap(c["loss"] as? Double), without = try XCTUnwrap(c["loss_without_noise"] as? Double)
            XCTAssertGreaterThan(abs(want - without), 1e-2, "case \(i): the noise must move the loss for the case to tell")
            let data = CLI.tempDir("neftune-row-\(i)") + "/row.jsonl"
            try JSONSerialization.data(withJSONObject: try XCTUnwrap(c["row"])).write(to: URL(fileURLWithPath: data))
            let out = run(1, ["train", "--model", HFModelCLITests.model(model), "--data", data, "--heldout", data,
                              "--steps", "1", "--batch-size", "1", "--lr", "1e-6", "--eval-every", "0", "--eval-examples", "0",
                              "--seed", "\((c["seed"] as? Int) ?? 0)", "--neftune-noise-alpha", "\(alpha)", "--quiet"], "trl-\(i)")
            let got = try XCTUnwrap(CLI.losses(out).first, "case \(i)")
            XCTAssertEqual(got, want, accuracy: 2e-6, "case \(i) (\(model), α \(alpha)): sft-dist \(got), TRL \(want)")
        }
    }

    /// L is each sequence's own length: one rank with micro-batches of 8 (padded rows), two
    /// ranks with micro-batches of 1 (none), and packed rows give the same losses; α = 0 does not.
    func testLossesDoNotDependOnRanksPaddingOrPacking() {
        let noisy = tiny + ["--neftune-noise-alpha", "5"]
        let padded = CLI.losses(run(1, noisy + ["--micro-batch-size", "8"], "padded"))
        let single = CLI.losses(run(2, noisy + ["--micro-batch-size", "1"], "single-n2"))
        let packed = CLI.losses(run(1, noisy + ["--packing"], "packed"))
        let plain = CLI.losses(run(1, tiny + ["--micro-batch-size", "8"], "plain"))
        XCTAssertEqual(padded.count, 3)
        for (label, other) in [("-n 2, micro-batch 1", single), ("packed", packed)] {
            XCTAssertEqual(other.count, 3, label)
            for (a, b) in zip(padded, other) { XCTAssertEqual(a, b, accuracy: 1e-5 * abs(a), "\(label): \(padded) vs \(other)") }
        }
        XCTAssertGreaterThan(abs(padded[0] - plain[0]), 1e-3, "α 5 should change step 1's loss: \(padded) vs \(plain)")
    }

    /// The noise is for training forwards: the evaluation before step 1 is the noise-free one,
    /// and the one after the last step equals `eval` of the saved model (no noise left set).
    func testEvaluationSeesNoNoise() throws {
        let args = tiny + ["--eval-examples", "8", "--max-new-tokens", "2", "--eval-every", "1"]
        let out = run(1, args + ["--neftune-noise-alpha", "15"], "eval-noisy")
        let noisy = CLI.evalRows(out), plain = CLI.evalRows(run(1, args, "eval-plain"))
        XCTAssertEqual(noisy.count, 4)
        let a = try XCTUnwrap(noisy.first?["eval_loss"]), b = try XCTUnwrap(plain.first?["eval_loss"])
        XCTAssertEqual(a.bitPattern, b.bitPattern, "eval_loss before training: \(a) with noise, \(b) without")
        let e = CLI.sftDist(["eval", "--model", out + "/model", "--data", out + "/data/heldout.jsonl", "--examples", "8",
                             "--max-length", "64", "--max-new-tokens", "2", "--json"])
        XCTAssertEqual(e.status, 0, e.all)
        let line = try XCTUnwrap(e.stdout.split(separator: "\n").last.map(String.init))
        let evaluated = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["eval_loss"] as? Double)
        let last = try XCTUnwrap(noisy.last?["eval_loss"])
        XCTAssertEqual(last, evaluated, accuracy: 1e-9, "the run's last evaluation \(last) vs eval of its model \(evaluated)")
    }

    /// The noise is a function of the seed, the step and the token: a run resumed at step 2
    /// trains steps 3–4 exactly as the uninterrupted run did.
    func testResumeIsBitExact() throws {
        let args = tiny + ["--steps", "4", "--neftune-noise-alpha", "5", "--save-every", "2", "--micro-batch-size", "2"]
        let whole = run(2, args, "whole")
        let resumed = run(2, args + ["--resume", whole + "/checkpoints/step-000002"], "resumed")
        XCTAssertEqual(CLI.loggedSteps(resumed), [1, 2, 3, 4])
        XCTAssertEqual(CLI.losses(resumed).map(\.bitPattern), CLI.losses(whole).map(\.bitPattern))
        let model = { (d: String) in try? Data(contentsOf: URL(fileURLWithPath: d + "/model/model.safetensors")) }
        XCTAssertNotNil(model(whole))
        XCTAssertEqual(model(resumed), model(whole), "resumed weights differ")
    }

    /// Objectives that divide by another forward of the policy (the sampler's, a snapshot's, the
    /// reference at step 1) refuse it, as do values outside [0, 1e6]: one line, exit 1, no output.
    func testRefusalsAreOneLine() {
        let cases: [([String], String)] = [
            (["--objective", "grpo", "--reward", "task"], "neftune-noise-alpha 5.0 with objective grpo"),
            (["--objective", "dpo"], "neftune-noise-alpha 5.0 with objective dpo"),
            (["--objective", "psft"], "neftune-noise-alpha 5.0 with objective psft"),
            // A reference is the initial weights: at step 1 iwsft's weight was 0.97, asft's KL 0.01.
            (["--objective", "iwsft"], "neftune-noise-alpha 5.0 with objective iwsft: the training forward would add noise to the embeddings that the reference's log-probs did not see"),
            (["--objective", "asft"], "neftune-noise-alpha 5.0 with objective asft"),
        ]
        for (extra, needle) in cases {
            let out = CLI.tempDir("neftune-refused") + "/run"
            let r = CLI.sftDist(tiny + extra + ["--neftune-noise-alpha", "5", "--out", out])
            XCTAssertEqual(r.status, 1, r.all)
            XCTAssertTrue(r.stderr.contains(needle), r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "a refused run wrote \(out)")
            // --dry-run says the same, whole (its errors are cut at 280 characters: this one was).
            let dry = CLI.sftDist(tiny + extra + ["--neftune-noise-alpha", "5", "--dry-run"])
            XCTAssertEqual(dry.status, 1, dry.all)
            XCTAssertTrue(dry.stderr.contains(needle) && !dry.stderr.contains("bytes)"), dry.stderr)
        }
        for bad in ["-1", "nan", "1e7", "five"] {
            let r = CLI.sftDist(tiny + ["--neftune-noise-alpha", bad, "--out", CLI.tempDir("neftune-bad") + "/run"])
            XCTAssertNotEqual(r.status, 0, bad)
            XCTAssertTrue(r.stderr.contains("neftune-noise-alpha") || r.stderr.contains("neftune_noise_alpha"), "\(bad): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "\(bad): \(r.stderr)")
        }
    }
}
