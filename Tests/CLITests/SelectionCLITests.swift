import Foundation
import XCTest

/// `--selection` under real mpirun: the selected rows, the loss tokens they bring and the
/// losses are the same at 1, 2 and 4 ranks; a run resumed with a non-empty UDS queue continues
/// exactly; bad settings stop at start-up with one line naming the setting.
final class SelectionCLITests: XCTestCase {
    /// Every row's raw JSON fields (strings included).
    static func rows(_ dir: String) -> [[String: Any]] {
        guard let text = try? String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap {
            guard let o = try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any], o["loss"] != nil else { return nil }
            return o
        }
    }

    static let base = ["train", "--model", "tiny", "--batch-size", "5", "--micro-batch-size", "2", "--selection-pool", "3",
                       "--steps", "3", "--eval-examples", "0", "--eval-every", "0", "--quiet", "--lr", "1e-2", "--warmup-steps", "0"]

    func testSelectedRowsAndLossesAreRankCountInvariant() throws {
        let ref = CLI.tempDir("sel-ref")
        XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--steps", "30", "--batch-size", "16", "--eval-examples", "0",
                                    "--eval-every", "0", "--quiet", "--lr", "1e-2", "--out", ref]).status, 0)
        var failures: [String] = []
        for name in ["uds", "q-tuning", "loss", "learnability", "random"] {
            var args = Self.base + ["--selection", name]
            if name == "learnability" { args += ["--ref-model", ref + "/model"] }
            if name == "uds" { args += ["--selection-arg", "alpha=0.01"] }
            var runs: [[[String: Any]]] = []
            for n in [1, 2, 4] {
                let out = CLI.tempDir("sel-\(name)-\(n)")
                let r = CLI.mpirun(n, args + ["--out", out], seconds: 120)
                if r.status != 0 { failures.append("\(name) -n \(n): exit \(r.status)\n\(r.all)"); break }
                runs.append(Self.rows(out))
            }
            guard runs.count == 3, runs[0].count == 3 else { failures.append("\(name): runs \(runs.map(\.count))"); continue }
            let selected = runs.map { $0.map { $0["selected_examples"] as? String ?? "?" } }
            let tokens = runs.map { $0.map { ($0["loss_tokens"] as? NSNumber)?.intValue ?? -1 } }
            let losses = runs.map { $0.map { ($0["loss"] as? NSNumber)?.doubleValue ?? .nan } }
            // The selection is a real one: a strict subset of the 15-candidate pool each step.
            for s in selected[0] where s.split(separator: ",").count >= 15 || s.isEmpty { failures.append("\(name): selected \(s)") }
            for k in 1..<3 {
                if selected[k] != selected[0] { failures.append("\(name): selected \(selected[k]) at -n \([1, 2, 4][k]) vs \(selected[0])") }
                if tokens[k] != tokens[0] { failures.append("\(name): loss tokens \(tokens[k]) vs \(tokens[0])") }
                for (a, b) in zip(losses[0], losses[k]) where abs(a - b) > 1e-5 * max(abs(a), 1e-3) {
                    failures.append("\(name): loss \(b) at -n \([1, 2, 4][k]) vs \(a)")
                }
            }
        }
        XCTAssertTrue(failures.isEmpty, failures.joined(separator: "\n"))
    }

    func testUDSResumesExactlyWithAQueue() throws {
        let dir = CLI.tempDir("sel-resume")
        let args = Self.base + ["--selection", "uds", "--selection-arg", "alpha=0.01", "--steps", "4"]
        XCTAssertEqual(CLI.mpirun(2, args + ["--out", dir + "/straight"]).status, 0)
        XCTAssertEqual(CLI.mpirun(2, args + ["--out", dir + "/saved", "--save-every", "2"]).status, 0)
        // The queue is in the checkpoint and not empty (2 steps × 5 selected sketches).
        let state = try String(contentsOfFile: dir + "/saved/checkpoints/step-000002/state.json", encoding: .utf8)
        XCTAssertTrue(state.contains("\"queue_count\":10") || state.contains("\"queue_count\" : 10"), state)
        let r = CLI.mpirun(2, args + ["--out", dir + "/resumed", "--resume", dir + "/saved/checkpoints/step-000002"])
        XCTAssertEqual(r.status, 0, r.all)
        let straight = Self.rows(dir + "/straight"), resumed = Self.rows(dir + "/resumed")
        XCTAssertEqual(straight.count, 4)
        func key(_ rows: [[String: Any]]) -> [String] {
            rows.suffix(2).map { "\($0["loss"] ?? "") \($0["selected_examples"] ?? "") \($0["uds_diversity"] ?? "")" }
        }
        XCTAssertEqual(key(resumed), key(straight), "steps 3-4 after resuming at step 2")
    }

    /// Learnability's `--ref-model` is checksummed into the checkpoint as an objective's
    /// reference is: other weights under the same path resumed silently and selected other rows
    /// from the next step on; the same weights resume, under another path too.
    func testLearnabilityRefusesAnotherReferenceOnResume() throws {
        let dir = CLI.tempDir("sel-learn-resume")
        for (name, steps) in [("ref", 6), ("other", 7)] {
            XCTAssertEqual(CLI.sftDist(["train", "--model", "tiny", "--steps", "\(steps)", "--batch-size", "8", "--eval-examples", "0",
                                        "--eval-every", "0", "--quiet", "--out", dir + "/" + name]).status, 0)
        }
        let args = Self.base + ["--selection", "learnability", "--ref-model", dir + "/ref/model", "--steps", "4", "--save-every", "2",
                                "--out", dir + "/run"]
        XCTAssertEqual(CLI.sftDist(args).status, 0)
        let resume = args + ["--resume", dir + "/run/checkpoints/step-000002"]
        let same = CLI.sftDist(resume)
        XCTAssertEqual(same.status, 0, same.all)
        // The same weights under another path resume too (ref_model was compared as a path).
        try FileManager.default.copyItem(atPath: dir + "/ref/model", toPath: dir + "/copy")
        let copy = CLI.sftDist(resume.map { $0 == dir + "/ref/model" ? dir + "/copy" : $0 })
        XCTAssertEqual(copy.status, 0, copy.all)
        try FileManager.default.removeItem(atPath: dir + "/ref/model")
        try FileManager.default.copyItem(atPath: dir + "/other/model", toPath: dir + "/ref/model")
        let other = CLI.sftDist(resume)
        XCTAssertEqual(other.status, 1, other.all)
        XCTAssertTrue(other.stderr.contains("the reference model differs from the one the checkpoint was trained against"), other.all)
    }

    func testBadSelectionSettingsStopAtStartUp() {
        let cases: [([String], String)] = [
            (["--selection", "nope"], "--selection must be one of none, uds, q-tuning, loss, learnability, random (got nope)"),
            (["--selection", "uds", "--selection-arg", "beta=1"], "selection uds: unknown argument(s) beta;"),
            (["--selection", "loss", "--selection-arg", "budget=0"], "selection loss: budget=0.0 must be in (0, 1]"),
            (["--selection", "random", "--selection-arg", "budget=1.5"], "selection random: budget=1.5 must be in (0, 1]"),
            (["--selection", "loss", "--selection-pool", "0"], "--selection-pool must be an integer in 1…1024 (got 0)"),
            (["--selection", "learnability"], "selection learnability needs a reference model: give --ref-model DIR"),
            ([], "--selection-pool needs a selector (--selection NAME)"),
            // A selector replaces the batch producer: rollouts and self-training would never run.
            (["--selection", "loss", "--objective", "grpo", "--reward", "task", "--rollouts", "2"],
             "selection loss chooses among the rows of --data, but objective grpo trains on rollouts it samples"),
            (["--selection", "uds", "--objective", "chord", "--reward", "task", "--rollouts", "2"],
             "selection uds chooses among the rows of --data, but objective chord trains on rollouts it samples"),
            (["--selection", "loss", "--objective", "spin"],
             "--selection loss chooses among the rows of --data, but objective spin makes the batches from the model's own answers"),
            (["--selection", "uds", "--self-train", "rft", "--self-train-scorer", "task"],
             "--selection uds chooses among the rows of --data, but --self-train rft makes the batches from the model's own answers"),
        ]
        for (extra, message) in cases {
            let out = CLI.tempDir("sel-bad")
            let r = CLI.mpirun(2, Self.base + extra + ["--out", out], seconds: 60)
            XCTAssertEqual(r.status, 1, "\(extra): \(r.all)")
            XCTAssertEqual(CLI.occurrences(of: message, in: r.stderr), 1, "\(extra): \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/metrics.jsonl"), "\(extra): nothing written")
            // Each shows in the recipe alone: --dry-run refuses it too.
            let dry = CLI.sftDist(Self.base + extra + ["--out", out, "--dry-run"])
            XCTAssertEqual(dry.status, 1, "--dry-run \(extra): \(dry.all)")
            XCTAssertTrue(dry.stderr.contains(message), "--dry-run \(extra): \(dry.stderr)")
        }
    }

    /// A hostile review: a pool larger than the data held rows several times (a step trained 8
    /// copies of one row), and a LoRA run took a LoRA checkpoint as its reference with zero
    /// adapters, dropping the checkpoint's training (without LoRA it was refused).
    func testPoolsLargerThanTheDataAndLoRACheckpointReferencesAreRefused() {
        let out = CLI.tempDir("sel-pool-rows")
        let r = CLI.sftDist(Self.base + ["--selection", "loss", "--selection-pool", "1024", "--out", out + "/run"], seconds: 60)
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertEqual(CLI.occurrences(of: "selection_pool 1024 × batch_size 5 = 5120 candidates a step, more than the", in: r.stderr), 1, r.all)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/run/metrics.jsonl"))

        let lora = ["--lora-rank", "2", "--eval-examples", "0", "--eval-every", "0", "--quiet"]
        let made = CLI.sftDist(["train", "--model", "tiny", "--steps", "2", "--batch-size", "4", "--save-every", "2", "--out", out + "/lo"] + lora)
        XCTAssertEqual(made.status, 0, made.all)
        let ref = CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--batch-size", "4", "--selection", "learnability",
                               "--ref-model", out + "/lo/checkpoints/step-000002/model", "--out", out + "/ref"] + lora)
        XCTAssertEqual(ref.status, 1, ref.all)
        XCTAssertTrue(ref.stderr.contains("step-000002/model: holds LoRA adapter tensors"), ref.all)
        let base = CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--batch-size", "4", "--selection", "learnability",
                                "--ref-model", out + "/lo/model-base", "--out", out + "/base"] + lora)
        XCTAssertEqual(base.status, 0, base.all)
        let preset = CLI.sftDist(["train", "--model", "tiny", "--steps", "1", "--batch-size", "4", "--selection", "learnability",
                                  "--ref-model", "tiny", "--out", out + "/preset", "--eval-examples", "0", "--quiet"])
        XCTAssertEqual(preset.status, 1, preset.all)
        XCTAssertTrue(preset.stderr.contains("--ref-model tiny: names a preset (random weights), not a saved model"), preset.all)
    }

    /// A pool too large for the memory is refused at start-up as out of memory (exit 5, one
    /// line, nothing written): the sampler's 2³⁰ indices were a failed 8 GiB allocation and a
    /// Swift trap at the first step. `ulimit -v` bounds the memory the check sees.
    func testAPoolLargerThanTheMemoryIsRefusedAtStartUp() {
        let out = CLI.tempDir("sel-pool-memory") + "/run"
        let argv = [CLI.binary, "train", "--model", "tiny", "--micro-batch-size", "2", "--steps", "2", "--eval-examples", "0",
                    "--selection", "loss", "--selection-pool", "1024", "--batch-size", "1048576", "--out", out]
        let r = CLI.run(["bash", "-c", "ulimit -v 6000000; exec \"$@\"", "bash"] + argv, seconds: 120)
        XCTAssertEqual(r.status, 5, r.all)
        XCTAssertEqual(CLI.occurrences(of: "sft-dist: error: out of memory: selection_pool 1024 × batch_size 1048576 = 1073741824 candidates per step need about", in: r.stderr), 1, r.all)
        XCTAssertFalse(r.stderr.contains("Fatal error"), r.all)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "nothing written: \(r.all)")
    }
}
