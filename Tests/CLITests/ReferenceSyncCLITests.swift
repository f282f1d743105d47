import Foundation
import XCTest

/// `--sync-ref-model` (TRL's sync_ref_model, TR-DPO's soft update) under dpo through the CLI:
/// the checkpoints' references obey θ_ref ← (1 − α)·θ_ref + α·θ every N steps, the losses are
/// the fixed-reference run's until the first update and differ after it, the same at
/// `mpirun -n 1` and `-n 2`, and a run resumed at -n 2 from -n 1's checkpoint goes on with the
/// moved reference (the checkpoint's reference checksum is the starting one's).
final class ReferenceSyncCLITests: XCTestCase {
    static func dpo(_ data: String) -> [String] {
        ["train", "--model", "tiny", "--data", data, "--objective", "dpo", "--objective-arg", "beta=0.5", "--batch-size", "7",
         "--micro-batch-size", "3", "--steps", "4", "--lr", "1e-2", "--warmup-steps", "0", "--eval-examples", "0",
         "--eval-every", "0", "--quiet"]
    }
    static let sync = ["--sync-ref-model", "--ref-model-sync-steps", "2", "--ref-model-mixup-alpha", "0.6"]

    /// `args` (dpo over `data` with a reference moved after step 2) at -n 1 and -n 2, checkpoints
    /// every 2 steps, against the fixed reference: steps 1–2 are the fixed run's, step 3 is not,
    /// the rank counts agree. The two output directories and -n 1's rows, or nil.
    static func movedReferenceRuns(_ args: [String], data: String, label: String,
                                   file: StaticString = #filePath, line: UInt = #line) -> (outs: [String], rows: [[String: Double]])? {
        let outs = [1, 2].map { CLI.tempDir("\(label)-n\($0)") }
        let runs = zip([1, 2], outs).map { n, out -> [[String: Double]] in
            let r = CLI.mpirun(n, args + ["--out", out, "--save-every", "2"], seconds: 120)
            XCTAssertEqual(r.status, 0, "-n \(n): \(r.all)", file: file, line: line)
            return CLI.trainingRows(out)
        }
        let fixed = CLI.trainingRows(atRanks: [1], dpo(data), label: "\(label)-fixed", seconds: 120)[0]
        guard runs.allSatisfy({ $0.count == 4 }), fixed.count == 4 else { XCTFail("\(runs) \(fixed)", file: file, line: line); return nil }
        for i in 0..<2 { XCTAssertEqual(runs[0][i]["loss"], fixed[i]["loss"], "step \(i + 1)", file: file, line: line) }
        XCTAssertNotEqual(runs[0][2]["loss"] ?? .nan, fixed[2]["loss"] ?? .nan, accuracy: 1e-6, "step 3 reads the moved reference", file: file, line: line)
        for (a, b) in zip(runs[0], runs[1]) {
            for key in ["loss", "grad_norm", "rewards/margins"] {
                let x = a[key] ?? .nan
                XCTAssertEqual(x, b[key] ?? .nan, accuracy: 1e-5 * max(abs(x), 1), "step \(a["step"] ?? 0) \(key), -n 1 vs -n 2", file: file, line: line)
            }
        }
        return (outs, runs[0])
    }

    /// Resumed at -n 2 from `checkpoint` (step 2 of -n 1's run): the moved reference comes back,
    /// and steps 3–4 are `rows`'.
    static func assertResumesWithTheMovedReference(_ args: [String], from checkpoint: String, like rows: [[String: Double]], label: String,
                                                   file: StaticString = #filePath, line: UInt = #line) {
        let resumed = CLI.tempDir("\(label)-resumed")
        let r = CLI.mpirun(2, args + ["--out", resumed, "--resume", checkpoint], seconds: 120)
        XCTAssertEqual(r.status, 0, r.all, file: file, line: line)
        let after = CLI.trainingRows(resumed).suffix(2)
        XCTAssertEqual(after.count, 2, file: file, line: line)
        for (a, b) in zip(after, rows.suffix(2)) {
            let y = b["loss"] ?? .nan
            XCTAssertEqual(a["loss"] ?? .nan, y, accuracy: 1e-5 * max(abs(y), 1), "step \(b["step"] ?? 0) after resuming at step 2", file: file, line: line)
        }
    }

    func testTheReferenceMovesEveryNStepsAcrossRanksAndResume() throws {
        let data = DPOCLITests.writePairs(CLI.tempDir("sync-ref-data"))
        let args = Self.dpo(data) + Self.sync
        // The first update comes after step 2.
        guard let (outs, rows) = Self.movedReferenceRuns(args, data: data, label: "sync-ref") else { return }
        // ref_4 = (1 − α)·ref_2 + α·θ_4, tensor by tensor, from the checkpoints.
        let ck = outs[0] + "/checkpoints/step-00000"
        let ref2 = ForgettingCLITests.tensors(ck + "2", file: "reference_model.safetensors")
        let ref4 = ForgettingCLITests.tensors(ck + "4", file: "reference_model.safetensors")
        let theta2 = ForgettingCLITests.tensors(ck + "2/model"), theta4 = ForgettingCLITests.tensors(ck + "4/model")
        XCTAssertFalse(ref2.isEmpty)
        XCTAssertEqual(Set(ref2.keys), Set(theta4.keys))
        let alpha = Float(0.6)
        var worst: Float = 0, movedFromTheta2 = false
        for (name, data) in ref4 {
            let r4 = ForgettingCLITests.floats(data), r2 = ForgettingCLITests.floats(ref2[name]), t4 = ForgettingCLITests.floats(theta4[name])
            guard r4.count == r2.count, r4.count == t4.count else { return XCTFail("\(name): \(r4.count) \(r2.count) \(t4.count)") }
            for i in r4.indices { worst = max(worst, abs(r4[i] - (r2[i] * (1 - alpha) + alpha * t4[i])) / max(1, abs(r4[i]))) }
            if ForgettingCLITests.floats(theta2[name]) != r2 { movedFromTheta2 = true }
        }
        XCTAssertLessThanOrEqual(worst, 1e-6, "ref_4 = 0.4·ref_2 + 0.6·θ_4")
        XCTAssertTrue(movedFromTheta2, "the reference is mixed, not replaced")
        // The run's own recipe.yaml runs again as it is (every key written at its value).
        let again = CLI.sftDist(["train", "--config", outs[0] + "/recipe.yaml", "--out", CLI.tempDir("sync-ref-again"), "--dry-run"], seconds: 60)
        XCTAssertEqual(again.status, 0, again.all)
        Self.assertResumesWithTheMovedReference(args, from: ck + "2", like: rows, label: "sync-ref")
    }

    func testSettingsThatCannotActAreRefused() throws {
        let data = DPOCLITests.writePairs(CLI.tempDir("sync-ref-bad"))
        let cases: [([String], String)] = [
            (Self.dpo(data).map { $0 == "dpo" ? "nll" : $0 }.filter { $0 != "--objective-arg" && $0 != "beta=0.5" } + Self.sync,
             "--sync-ref-model moves the reference model the objective reads, and objective nll reads none here"),
            (Self.dpo(data) + ["--ref-model-mixup-alpha", "0.5"], "--ref-model-mixup-alpha sets how sync_ref_model (--sync-ref-model) moves the reference model"),
            (Self.dpo(data) + ["--sync-ref-model"], "ref_model_sync_steps (default 512, --ref-model-sync-steps) is more than the run's 4 steps"),
            (Self.dpo(data) + Self.sync + ["--lora-rank", "4"], "--sync-ref-model with lora_rank 4"),
            (Self.dpo(data) + Self.sync.dropLast(2) + ["--ref-model-mixup-alpha", "0"], "--ref-model-mixup-alpha must be a number in (0, 1] (got 0)"),
            // 40 pairs, half an epoch at 7 a step: 3 steps, known once the rows are counted.
            (Self.dpo(data).filter { $0 != "--steps" && $0 != "4" } + ["--num-train-epochs", "0.5"] + Self.sync.map { $0 == "2" ? "4" : $0 },
             "--ref-model-sync-steps 4 is more than the run's 3 steps")]
        for (args, message) in cases {
            let out = CLI.tempDir("sync-ref-bad-out")
            let r = CLI.sftDist(args + ["--out", out], seconds: 60)
            XCTAssertEqual(r.status, 1, r.all)
            XCTAssertTrue(r.stderr.contains(message), "\(message)\n\(r.stderr)")
            XCTAssertEqual(CLI.occurrences(of: "error:", in: r.stderr), 1, r.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/model"), "nothing half-written")
        }
    }
}
