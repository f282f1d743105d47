import Foundation
import XCTest

/// `--bema` through the CLI under real mpirun: with β = α = 1 the saved average is
/// 2·θ_t − θ_0 at the last update step (the trained weights of that step's checkpoint, the base
/// model's), frozen tensors are the base's, `-n 1` and `-n 2` agree, a run resumed from an
/// earlier checkpoint saves the same average bit for bit, with LoRA `OUT/bema/` is an adapter
/// `eval --adapter` reads, and settings that would do nothing are refused in one line.
final class BEMACLITests: XCTestCase {
    static let quiet = ["--eval-every", "0", "--eval-examples", "0", "--quiet", "--batch-size", "8", "--micro-batch-size", "2"]
    typealias F = ForgettingCLITests

    /// A trained tiny model to start from (its weights are θ_0), and its held-out rows.
    static func base(_ name: String) -> String {
        let base = CLI.tempDir(name)
        let r = CLI.sftDist(["train", "--model", "tiny", "--steps", "2", "--out", base] + quiet)
        XCTAssertEqual(r.status, 0, r.all)
        return base
    }

    func testTheAverageIsTwiceTheLastUpdatesWeightsLessTheStartAtOneAndTwoRanks() throws {
        let base = Self.base("bema-base"), start = F.tensors(base + "/model")
        XCTAssertFalse(start.isEmpty)
        var averages: [[String: Data]] = []
        // -n 2 twice: the second with ZeRO-1 and AdamW (which it shards; the weights are allgathered
        // before the average reads them), checked by the identity alone.
        for (n, zero) in [(1, false), (2, false), (2, true)] {
            let out = CLI.tempDir("bema-\(n)\(zero ? "-zero" : "")")
            // Updates at steps 3 and 6 of 7: β_t = α_t = 1, so θ' = θ_6 + (θ_6 − θ_0).
            let r = CLI.mpirun(n, ["train", "--model", base + "/model", "--steps", "7", "--bema", "--bema-update-freq", "3",
                                   "--bema-ema-power", "0", "--bema-bias-power", "0", "--freeze", "wpe"] + (zero ? ["--zero", "1", "--lr", "1e-3"] : ["--optimizer", "sgd", "--lr", "0.1"]) + [
                                   "--warmup-steps", "1", "--save-every", "3", "--keep-last", "0", "--out", out] + Self.quiet, seconds: 120)
            XCTAssertEqual(r.status, 0, r.all)
            let bema = F.tensors(out + "/bema"), last = F.tensors(out + "/model"), six = F.tensors(out + "/checkpoints/step-000006/model")
            XCTAssertEqual(Set(bema.keys), Set(start.keys), "OUT/bema/ has the model's tensors")
            for name in start.keys.sorted() {
                if name.contains("wpe") {
                    XCTAssertEqual(bema[name], start[name], "-n \(n): frozen \(name) is not the base's")
                    continue
                }
                let got = F.floats(bema[name]), t6 = F.floats(six[name]), t0 = F.floats(start[name])
                XCTAssertEqual(got.count, t0.count, name)
                for i in got.indices {
                    let want = (t6[i] - t0[i]) + t6[i]
                    XCTAssertEqual(got[i], want, accuracy: 4 * Float.ulpOfOne * max(1, abs(want)), "-n \(n): \(name)[\(i)]")
                }
                if name.hasSuffix("weight") && name.contains(".h.0.") {
                    XCTAssertNotEqual(bema[name], last[name], "-n \(n): \(name): the average is the last weights")
                    XCTAssertNotEqual(six[name], start[name], "-n \(n): \(name) did not train")
                }
            }
            if !zero { averages.append(bema) }
        }
        for name in start.keys.sorted() {
            for other in averages.dropFirst() {
                for (a, b) in zip(F.floats(averages[0][name]), F.floats(other[name])) {
                    XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(a)), "\(name): -n 1 against -n 2")
                }
            }
        }
    }

    /// TRL's default powers, a burn-in and AdamW: a run resumed from its step-3 checkpoint into
    /// another directory ends with the uninterrupted run's losses and average, bit for bit.
    func testResumedFromAnEarlierCheckpointTheAverageIsBitExact() throws {
        let args = ["train", "--model", "tiny", "--steps", "8", "--bema", "--bema-update-freq", "2", "--bema-update-after", "1",
                    "--bema-lag", "2", "--save-every", "3", "--keep-last", "0"] + Self.quiet
        let reference = CLI.tempDir("bema-reference"), resumed = CLI.tempDir("bema-resumed")
        let r = CLI.mpirun(2, args + ["--out", reference])
        XCTAssertEqual(r.status, 0, r.all)
        let again = CLI.mpirun(2, args + ["--out", resumed, "--resume", reference + "/checkpoints/step-000003"])
        XCTAssertEqual(again.status, 0, again.all)
        XCTAssertEqual(CLI.losses(resumed).map(\.bitPattern), CLI.losses(reference).map(\.bitPattern))
        XCTAssertEqual(CLI.losses(resumed).count, 8)
        let expected = F.tensors(reference + "/bema")
        XCTAssertFalse(expected.isEmpty)
        XCTAssertEqual(F.tensors(resumed + "/bema"), expected, "the average after resuming")
        XCTAssertNotEqual(expected, F.tensors(reference + "/model"))
    }

    /// With LoRA the average is of the adapters: OUT/bema/ is a peft adapter that eval reads.
    func testWithLoRATheAverageIsAnAdapter() throws {
        let base = Self.base("bema-lora-base"), out = CLI.tempDir("bema-lora")
        let r = CLI.mpirun(2, ["train", "--model", base + "/model", "--steps", "4", "--lora-rank", "4", "--bema", "--bema-update-freq", "2",
                               "--lr", "0.05", "--out", out] + Self.quiet)
        XCTAssertEqual(r.status, 0, r.all)
        let bema = F.tensors(out + "/bema", file: "adapter_model.safetensors"), model = F.tensors(out + "/model", file: "adapter_model.safetensors")
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/bema/adapter_config.json"))
        XCTAssertEqual(Set(bema.keys), Set(model.keys))
        XCTAssertTrue(bema.keys.contains { $0.contains("lora_B") }, "\(bema.keys.sorted())")
        XCTAssertNotEqual(bema, model, "the averaged adapters are the trained ones")
        // B starts at zero (peft's init): an average that never moved would keep it there.
        XCTAssertTrue(bema.filter { $0.key.contains("lora_B") }.values.contains { F.floats($0).contains { $0 != 0 } }, "the averaged B factors are all zero")
        let e = CLI.sftDist(["eval", "--model", base + "/model", "--adapter", out + "/bema", "--data", base + "/data/heldout.jsonl", "--examples", "4"])
        XCTAssertEqual(e.status, 0, e.all)
    }

    /// `--bema-update-ref-model` under dpo: with β = α = 1 and the average moved every step, the
    /// reference replaced at steps 2 and 4 is 2·θ_t − θ_0 there (checkpoints); the losses are the
    /// fixed-reference run's for steps 1–2 and differ at step 3; `-n 1` and `-n 2` agree; a run
    /// resumed at -n 2 from -n 1's step-2 checkpoint goes on with the replaced reference.
    func testTheReferenceBecomesTheAverageAcrossRanksAndResume() throws {
        let data = DPOCLITests.writePairs(CLI.tempDir("bema-ref-data"))
        let dpo = ReferenceSyncCLITests.dpo(data)
        let args = dpo + ["--bema", "--bema-update-freq", "1", "--bema-ema-power", "0", "--bema-bias-power", "0",
                          "--bema-update-ref-model", "--bema-ref-model-update-freq", "2"]
        guard let (outs, rows) = ReferenceSyncCLITests.movedReferenceRuns(args, data: data, label: "bema-ref") else { return }
        // ref_t = 2·θ_t − θ_0 at t = 2 and 4, θ_0 the checkpoint's own (bema_theta0), the same in both.
        let ck = outs[0] + "/checkpoints/step-00000"
        XCTAssertEqual(F.tensors(ck + "2", file: "bema_theta0.safetensors"), F.tensors(ck + "4", file: "bema_theta0.safetensors"))
        for t in [2, 4] {
            let ref = F.tensors(ck + "\(t)", file: "reference_model.safetensors"), theta = F.tensors(ck + "\(t)/model")
            let theta0 = F.tensors(ck + "\(t)", file: "bema_theta0.safetensors")
            XCTAssertEqual(Set(ref.keys), Set(theta.keys))
            XCTAssertEqual(Set(theta0.keys), Set(theta.keys))
            var worst: Float = 0, moved: Float = 0
            for (name, data) in ref {
                let r = F.floats(data), p = F.floats(theta[name]), p0 = F.floats(theta0[name])
                guard r.count == p.count, r.count == p0.count else { return XCTFail("\(name)") }
                for i in r.indices {
                    worst = max(worst, abs(r[i] - ((p[i] - p0[i]) + p[i])) / max(1, abs(r[i])))
                    moved = max(moved, abs(p[i] - p0[i]))
                }
            }
            XCTAssertLessThanOrEqual(worst, 4 * Float.ulpOfOne, "step \(t): ref = 2·θ − θ_0")
            XCTAssertGreaterThan(moved, 1e-3, "step \(t): the weights did not move")
        }
        ReferenceSyncCLITests.assertResumesWithTheMovedReference(args, from: outs[0] + "/checkpoints/step-000002", like: rows, label: "bema-ref")
    }

    func testSettingsThatWouldDoNothingAreRefusedInOneLine() throws {
        let dir = CLI.tempDir("bema-refused")
        func refused(_ args: [String], _ expected: String, line: UInt = #line) {
            let r = CLI.sftDist(["train", "--model", "tiny", "--steps", "10", "--dry-run", "--out", dir + "/out"] + args)
            XCTAssertEqual(r.status, 1, r.all, line: line)
            XCTAssertTrue(r.stderr.contains(expected), r.all, line: line)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.all, line: line)
        }
        refused(["--bema-lag", "3"], "--bema-lag is a setting of bema (--bema), the bias-corrected average of the weights: without it")
        refused(["--bema"], "bema_update_freq (default 400, --bema-update-freq) first moves the average at step 400, after the run's 10 steps: OUT/bema/ would be the initial weights; give a smaller interval (TRL's default is 400)")
        refused(["--bema", "--bema-update-freq", "4", "--bema-update-after", "7"], "--bema-update-freq 4 after --bema-update-after 7 first moves the average at step 11, after the run's 10 steps: OUT/bema/ would be the initial weights; give a smaller bema_update_after or interval")
        // With κ = 0 β_t is 1 whatever the base; α_t = (0 + 0.1·2)^−1 = 5 would extrapolate.
        refused(["--bema", "--bema-update-freq", "2", "--bema-lag", "0", "--bema-multiplier", "0.1", "--bema-ema-power", "0", "--bema-bias-power", "1"],
                "the correction's weight α_t = (lag + multiplier·t)^−1 is 5 at the first update (step 2), more than 1")
        refused(["--bema", "--bema-update-freq", "1", "--bema-lag", "0", "--bema-multiplier", "0.5"], "is 1.41421 at the first update (step 1), more than 1")
        // The reference update: only with --bema, its keys only with it, an objective that reads a
        // reference, neither beside sync_ref_model nor with LoRA, and within the run.
        let ref = ["--bema", "--bema-update-freq", "1", "--bema-update-ref-model"]
        refused(["--bema-update-ref-model"], "--bema-update-ref-model is a setting of bema (--bema)")
        refused(["--bema", "--bema-update-freq", "1", "--bema-ref-model-update-freq", "2"], "--bema-ref-model-update-freq sets when bema_update_ref_model (--bema-update-ref-model) replaces the reference model: without it")
        refused(ref + ["--bema-ref-model-update-freq", "2"], "--bema-update-ref-model replaces the reference model the objective reads, and objective nll reads none here")
        let dpo = ["--objective", "dpo", "--data", DPOCLITests.writePairs(dir)]
        refused(ref + dpo, "bema_ref_model_update_freq (default 400, --bema-ref-model-update-freq) first replaces the reference at step 400, after the run's 10 steps")
        refused(ref + dpo + ["--bema-ref-model-update-after", "11"], "--bema-ref-model-update-after 11 first replaces the reference at step 11, after the run's 10 steps: no training step would read the replaced reference; give a smaller bema_ref_model_update_after")
        refused(ref + dpo + ["--bema-ref-model-update-freq", "10"], "--bema-ref-model-update-freq 10 first replaces the reference at step 10, the run's last step: no training step would read")
        refused(ref + dpo + ["--bema-ref-model-update-freq", "2", "--sync-ref-model"], "--bema-update-ref-model with --sync-ref-model: both move the reference model")
        refused(ref + ["--bema-ref-model-update-freq", "2", "--objective", "gkd", "--ref-model", dir + "/teacher"],
                "--bema-update-ref-model replaces a reference by the trained weights' average; objective gkd's --ref-model is the teacher it distils, which stays fixed")
        refused(ref + dpo + ["--bema-ref-model-update-freq", "2", "--lora-rank", "2"], "--bema-update-ref-model with lora_rank 2: a LoRA run's reference is its base with zero adapters")
        // A recipe file's key is named by its line.
        let recipe = dir + "/recipe.yaml"
        try "steps: 10\nbema_ema_power: 0.3\n".write(toFile: recipe, atomically: true, encoding: .utf8)
        let r = CLI.sftDist(["train", "--config", recipe, "--dry-run", "--out", dir + "/out2"])
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertTrue(r.stderr.contains("recipe.yaml:2: bema_ema_power is a setting of bema"), r.all)
        // Switched off on the command line over a recipe that set it: runs.
        try "steps: 10\nbema: true\nbema_update_freq: 5\n".write(toFile: recipe, atomically: true, encoding: .utf8)
        let off = CLI.sftDist(["train", "--config", recipe, "--no-bema", "--dry-run", "--out", dir + "/out3"])
        XCTAssertEqual(off.status, 0, off.all)
    }
}
