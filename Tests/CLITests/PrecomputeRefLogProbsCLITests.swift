import Foundation
import XCTest

/// `--precompute-ref-log-probs` (TRL's DPOConfig `precompute_ref_log_probs`) through the CLI:
/// against a `--ref-model` that is not the initial weights, a run that scores the reference once
/// and releases it trains and evaluates (held-out split and an `--eval-data` pair set) as a run
/// that keeps it, under real `mpirun -n 1` and `-n 2`; it resumes bit-exact, is refused against
/// another reference on resume, resumes a checkpoint of a run without it; what it cannot do is refused.
final class PrecomputeRefLogProbsCLITests: XCTestCase {
    func args(_ data: String, steps: Int = 4) -> [String] {
        ["train", "--model", "tiny", "--data", data, "--objective", "dpo", "--objective-arg", "beta=0.5",
         "--batch-size", "7", "--micro-batch-size", "3", "--steps", "\(steps)", "--lr", "1e-2", "--warmup-steps", "0",
         "--eval-examples", "4", "--eval-every", "2"]
    }

    /// A reference that is not the initial weights: tiny trained two dpo steps.
    static func reference(_ dir: String, data: String) -> String {
        let r = CLI.sftDist(["train", "--model", "tiny", "--data", data, "--objective", "dpo", "--steps", "2", "--lr", "3e-2",
                             "--warmup-steps", "0", "--eval-every", "0", "--eval-examples", "0", "--quiet", "--out", dir + "/ref"])
        XCTAssertEqual(r.status, 0, r.all)
        return dir + "/ref/model"
    }

    func testTrainsAndEvaluatesAsTheLiveReferenceAtOneAndTwoRanks() throws {
        let dir = CLI.tempDir("precompute-ref")
        let data = DPOCLITests.writePairs(dir)
        let other = dir + "/other.jsonl"
        try #"{"prompt": "3+9=", "chosen": "12", "rejected": "130"}"#.appending("\n").appending(#"{"prompt": "20+5=", "chosen": "25", "rejected": "26"}"#)
            .write(toFile: other, atomically: true, encoding: .utf8)
        let ref = Self.reference(dir, data: data)
        let base = args(data) + ["--ref-model", ref, "--eval-data", "other=" + other]
        var runs: [(label: String, training: [[String: Double]], eval: [[String: Double]])] = []
        for (label, n, extra) in [("live", 1, []), ("precomputed", 1, ["--precompute-ref-log-probs"]),
                                  ("precomputed -n 2", 2, ["--precompute-ref-log-probs", "--precompute-ref-batch-size", "5"])] {
            let out = dir + "/" + label.replacingOccurrences(of: " ", with: "")
            let r = CLI.mpirun(n, base + extra + ["--out", out])
            XCTAssertEqual(r.status, 0, "\(label): \(r.all)")
            // 38 training pairs, 2 held out, 2 in --eval-data other: 84 sequences.
            XCTAssertEqual(r.stdout.contains("precompute_ref_log_probs: the reference scored 84 sequences ("), !extra.isEmpty, "\(label): \(r.stdout)")
            runs.append((label, CLI.trainingRows(out), CLI.evalRows(out)))
        }
        let live = runs[0]
        XCTAssertEqual(live.training.count, 4)
        XCTAssertGreaterThan(abs(live.training[0]["rewards/margins"] ?? 0), 1e-3, "the reference is not the initial weights")
        try Self.assertAsLive(runs, training: ["loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen", "grad_norm"],
                              eval: ["eval_loss", "eval_rewards/margins", "eval_other_loss", "eval_other_rewards/margins"], label: "dpo")
    }

    /// kto (TRL's KTOConfig precompute_ref_log_probs) under loss_type=apo_zero_unpaired, and under
    /// loss_type=kto with kl_pairing=fixed (the KL term's mismatched pairs fixed per row and scored
    /// too): the labelled rows, the held-out ones and their pairs scored once against a
    /// `--ref-model` that is not the initial weights train and evaluate as the live reference
    /// does, at -n 1 and -n 2, and resume bit-exact.
    func testKTOAsTheLiveReference() throws {
        let dir = CLI.tempDir("precompute-ref-kto")
        let ref = CLI.sftDist(KTOCLITests.args(steps: 2) + ["--lr", "3e-2", "--out", dir + "/ref"])
        XCTAssertEqual(ref.status, 0, ref.all)
        // 72 training rows and 18 held out, a sequence each; under kto each has a mismatched pair too.
        for (arms, scored) in [(["loss_type=apo_zero_unpaired", "desirable_weight=1.5"], 90), (["kl_pairing=fixed"], 180)] {
            let base = KTOCLITests.args(arms.flatMap { ["--objective-arg", $0] } + ["--ref-model", dir + "/ref/model", "--eval-every", "2",
                                                                                  "--eval-examples", "100", "--heldout-fraction", "0.2"], steps: 4).filter { $0 != "--quiet" }
            var runs: [(label: String, training: [[String: Double]], eval: [[String: Double]])] = []
            for (label, n, extra) in [("live", 1, []), ("precomputed", 1, ["--precompute-ref-log-probs"]),
                                      ("precomputed -n 2", 2, ["--precompute-ref-log-probs", "--precompute-ref-batch-size", "5"])] {
                let out = dir + "/" + arms[0] + label.replacingOccurrences(of: " ", with: "")
                let r = CLI.mpirun(n, base + extra + ["--out", out], seconds: 240)
                XCTAssertEqual(r.status, 0, "\(arms) \(label): \(r.all)")
                XCTAssertEqual(r.stdout.contains("precompute_ref_log_probs: the reference scored \(scored) sequences ("), !extra.isEmpty, "\(arms) \(label): \(r.stdout)")
                runs.append((label, CLI.trainingRows(out), CLI.evalRows(out).filter { $0["eval_loss"] != nil }))
            }
            let live = runs[0]
            XCTAssertEqual(live.training.count, 4)
            XCTAssertEqual(live.eval.count, 3)
            XCTAssertGreaterThan(abs(live.eval[0]["eval_rewards/chosen"] ?? 0), 1e-3, "the reference is not the initial weights")
            if arms == ["kl_pairing=fixed"] {
                XCTAssertGreaterThan(live.training.compactMap { $0["kl"] }.max() ?? 0, 1e-3, "a KL term to compare")
                XCTAssertGreaterThan(live.eval.compactMap { $0["eval_kl"] }.max() ?? 0, 1e-3, "a held-out KL term to compare")
            }
            // (A step without an undesirable row logs no rewards/rejected, as TRL's.)
            try Self.assertAsLive(runs, training: ["loss", "kl", "rewards/chosen", "rewards/rejected", "logps/chosen", "grad_norm"],
                                  eval: ["eval_loss", "eval_kl", "eval_rewards/chosen", "eval_rewards/margins"], label: "\(arms)")
            CLI.assertResumesBitExact(KTOCLITests.args(arms.flatMap { ["--objective-arg", $0] } + ["--precompute-ref-log-probs"], steps: 4),
                                      every: 2, label: "precompute-ref-kto-resume-" + arms[0])
        }
    }

    /// Each later run's training and evaluation rows equal the first's (the live reference's) to
    /// 2e-5 relative: the training keys each step logs on either side (every step logs a loss),
    /// the evaluation keys at every evaluation.
    static func assertAsLive(_ runs: [(label: String, training: [[String: Double]], eval: [[String: Double]])],
                             training: [String], eval: [String], label: String) throws {
        let live = runs[0]
        for run in runs.dropFirst() {
            XCTAssertEqual(run.training.count, live.training.count, "\(label) \(run.label)")
            for (i, (a, b)) in zip(live.training, run.training).enumerated() {
                XCTAssertNotNil(a["loss"], "\(label) step \(i + 1)")
                for key in training where a[key] != nil || b[key] != nil {
                    let x = a[key] ?? .nan, y = b[key] ?? .nan
                    XCTAssertEqual(x, y, accuracy: 2e-5 * max(1, abs(x)), "\(label) \(run.label) step \(i + 1) \(key): live \(x), \(y)")
                }
            }
            XCTAssertEqual(run.eval.count, live.eval.count, "\(label) \(run.label)")
            for (a, b) in zip(live.eval, run.eval) {
                for key in eval {
                    let x = try XCTUnwrap(a[key], key), y = b[key] ?? .nan
                    XCTAssertEqual(x, y, accuracy: 2e-5 * max(1, abs(x)), "\(label) \(run.label) step \(a["step"] ?? -1) \(key): live \(x), \(y)")
                }
            }
        }
    }

    func testResumesBitExactAndChecksTheReference() throws {
        let dir = CLI.tempDir("precompute-ref-resume")
        let data = DPOCLITests.writePairs(dir)
        let run = args(data, steps: 4) + ["--precompute-ref-log-probs", "--quiet"]
        CLI.assertResumesBitExact(run, every: 2, label: "precompute-ref-resume-exact")
        // The checkpoint records the released reference (the initial weights): another is refused.
        let out = CLI.tempDir("precompute-ref-other")
        XCTAssertEqual(CLI.sftDist(run + ["--save-every", "2", "--out", out + "/a"]).status, 0)
        // (Without --quiet: the log would say the reference was scored.)
        let refused = CLI.sftDist(run.filter { $0 != "--quiet" } + ["--ref-model", Self.reference(dir, data: data), "--out", out + "/b",
                                         "--resume", out + "/a/checkpoints/step-000002"])
        XCTAssertEqual(refused.status, 1, refused.all)
        XCTAssertTrue(refused.stderr.contains("the reference model differs from the one the checkpoint was trained against"), refused.all)
        XCTAssertFalse(refused.stdout.contains("precompute_ref_log_probs: the reference scored"), "scored before the refusal: \(refused.stdout)")
        // A checkpoint of a run that kept its reference resumes with the flag, and the other way round.
        let live = args(data, steps: 4) + ["--quiet"]
        XCTAssertEqual(CLI.sftDist(live + ["--save-every", "2", "--out", out + "/c"]).status, 0)
        let switched = CLI.sftDist(run + ["--out", out + "/d", "--resume", out + "/c/checkpoints/step-000002"])
        XCTAssertEqual(switched.status, 0, switched.all)
        let back = CLI.sftDist(live + ["--out", out + "/e", "--resume", out + "/a/checkpoints/step-000002"])
        XCTAssertEqual(back.status, 0, back.all)
        // Steps 3 and 4 are computed after the switch (1 and 2 are the checkpoint's run's rows).
        for (whole, resumed) in [("c", "d"), ("a", "e")] {
            let x = CLI.losses(out + "/" + whole), y = CLI.losses(out + "/" + resumed)
            XCTAssertEqual(x.count, 4); XCTAssertEqual(y.count, 4)
            for i in 2..<min(4, x.count, y.count) { XCTAssertEqual(x[i], y[i], accuracy: 2e-5, "\(resumed) step \(i + 1)") }
        }
    }

    func testWhatItCannotDoIsRefused() throws {
        let dir = CLI.tempDir("precompute-ref-refused")
        let data = DPOCLITests.writePairs(dir)
        let cases: [([String], String)] = [
            (["--objective", "cpo"], "--precompute-ref-log-probs scores the reference's log-probs of the data's answers once, before the first step, and objective cpo reads no reference model; it applies to dpo and to kto with kl_pairing=fixed or loss_type=apo_zero_unpaired"),
            (["--objective", "kto"], "objective kto reads the reference on prompt–answer pairings drawn at each step (its KL estimate; --objective-arg kl_pairing=fixed pairs each row once, before the first step, as TRL's KTOTrainer); it applies to dpo"),
            (["--objective", "spin"], "objective spin reads a reference that moves with the policy (its opponent or old policy); it applies to dpo"),
            (["--objective", "online-dpo", "--reward", "exact", "--batch-size", "8"], "objective online-dpo reads the reference on answers it samples during training; it applies to dpo"),
            (["--bema", "--bema-update-freq", "1", "--bema-update-ref-model", "--bema-ref-model-update-freq", "1"],
             "--bema-update-ref-model moves the reference model, and --precompute-ref-log-probs scores it once, before the first step, then releases it"),
            (["--sync-ref-model", "--ref-model-sync-steps", "2"], "--sync-ref-model moves the reference model, and --precompute-ref-log-probs scores it once, before the first step, then releases it"),
        ]
        for (extra, message) in cases {
            let r = CLI.sftDist(args(data) + ["--precompute-ref-log-probs", "--out", dir + "/out"] + extra)
            XCTAssertEqual(r.status, 1, "\(extra): \(r.all)")
            XCTAssertTrue(r.stderr.contains(message), "\(extra): \(r.stderr)")
            XCTAssertEqual(CLI.occurrences(of: "error:", in: r.stderr), 1, r.stderr)
        }
        let unread = CLI.sftDist(args(data) + ["--precompute-ref-batch-size", "4", "--out", dir + "/out"])
        XCTAssertEqual(unread.status, 1, unread.all)
        XCTAssertTrue(unread.stderr.contains("--precompute-ref-batch-size sizes the scoring pass of precompute_ref_log_probs (--precompute-ref-log-probs): without it there is none"), unread.stderr)
        // From a recipe file, the message names its line.
        try "objective: dpo\nprecompute_ref_log_probs: true\nsync_ref_model: true\nref_model_sync_steps: 2\n".write(toFile: dir + "/r.yaml", atomically: true, encoding: .utf8)
        let file = CLI.sftDist(["train", "--config", dir + "/r.yaml", "--model", "tiny", "--data", data, "--steps", "4", "--out", dir + "/out"])
        XCTAssertEqual(file.status, 1, file.all)
        XCTAssertTrue(file.stderr.contains("r.yaml:3: sync_ref_model moves the reference model, and \(dir)/r.yaml:2: precompute_ref_log_probs scores it once"), file.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out/model"), "nothing written")
        // A recipe file's key for dpo, with --objective kto on the command line: not used (its
        // recipe.yaml comments it), so kto keeps the reference it reads at every step.
        try "objective: dpo\nprecompute_ref_log_probs: true\n".write(toFile: dir + "/dpo.yaml", atomically: true, encoding: .utf8)
        let kto = CLI.sftDist(["train", "--config", dir + "/dpo.yaml", "--objective", "kto", "--model", "tiny", "--data", data, "--steps", "2",
                               "--batch-size", "4", "--micro-batch-size", "4", "--eval-every", "1", "--out", dir + "/kto"])
        XCTAssertEqual(kto.status, 0, kto.all)
        XCTAssertFalse(kto.stdout.contains("precompute_ref_log_probs: the reference scored"), kto.stdout)
        // …and with the batch size beside it, the run's recipe.yaml (both keys commented) runs again.
        try "objective: dpo\nprecompute_ref_log_probs: true\nprecompute_ref_batch_size: 3\n".write(toFile: dir + "/both.yaml", atomically: true, encoding: .utf8)
        let first = CLI.sftDist(["train", "--config", dir + "/both.yaml", "--objective", "kto", "--model", "tiny", "--data", data, "--steps", "2",
                                 "--batch-size", "4", "--micro-batch-size", "4", "--quiet", "--out", dir + "/kto2"])
        XCTAssertEqual(first.status, 0, first.all)
        let again = CLI.sftDist(["train", "--config", dir + "/kto2/recipe.yaml", "--quiet", "--out", dir + "/kto3"])
        XCTAssertEqual(again.status, 0, again.all)
        // A batch size flag there would do nothing.
        let flag = CLI.sftDist(["train", "--config", dir + "/dpo.yaml", "--objective", "kto", "--precompute-ref-batch-size", "4", "--model", "tiny",
                                "--data", data, "--steps", "2", "--out", dir + "/kto4"])
        XCTAssertEqual(flag.status, 1, flag.all)
        XCTAssertTrue(flag.stderr.contains("--precompute-ref-batch-size sizes the scoring pass of precompute_ref_log_probs"), flag.stderr)
        // The same file under --objective dpo on the command line: it scores, as the file asks.
        let dpo = CLI.sftDist(["train", "--config", dir + "/dpo.yaml", "--objective", "dpo", "--model", "tiny", "--data", data, "--steps", "2",
                               "--batch-size", "4", "--micro-batch-size", "4", "--eval-every", "0", "--out", dir + "/dpo"])
        XCTAssertEqual(dpo.status, 0, dpo.all)
        XCTAssertTrue(dpo.stdout.contains("precompute_ref_log_probs: the reference scored"), dpo.stdout)
        let clash = CLI.sftDist(["train", "--config", dir + "/r.yaml", "--objective", "dpo", "--model", "tiny", "--data", data, "--steps", "4", "--out", dir + "/out"])
        XCTAssertEqual(clash.status, 1, clash.all)
        XCTAssertTrue(clash.stderr.contains("r.yaml:3: sync_ref_model moves the reference model"), clash.stderr)
    }
}
