import Foundation
import XCTest

/// `--num-train-epochs` (TRL's num_train_epochs): as in transformers, ⌈rows ÷ batch_size⌉ steps
/// an epoch, the last a short batch, so each epoch trains every row once; ⌈epochs × that⌉ steps;
/// an `epoch` figure on each step row (step ÷ steps an epoch), the same under -n 1 and -n 2, a
/// recipe.yaml that reads back, exact resume, and a disagreeing --steps refused.
final class TrainEpochsCLITests: XCTestCase {
    /// 30 training rows (and a held-out file, so no split changes the count).
    func writeData(_ dir: String) -> [String] {
        func rows(_ n: Int, _ seed: Int) -> String {
            (0..<n).map { i in
                let a = (i * 7 + seed) % 50, b = (i * 13 + seed) % 30
                return #"{"prompt": "add \#(a) \#(b) =", "completion": " \#(a + b)"}"#
            }.joined(separator: "\n")
        }
        FileManager.default.createFile(atPath: dir + "/train.jsonl", contents: Data(rows(30, 1).utf8))
        FileManager.default.createFile(atPath: dir + "/held.jsonl", contents: Data(rows(6, 3).utf8))
        return ["train", "--model", "tiny", "--data", dir + "/train.jsonl", "--heldout", dir + "/held.jsonl",
                "--batch-size", "8", "--micro-batch-size", "4", "--warmup-steps", "0", "--eval-every", "0", "--eval-examples", "0"]
    }

    func testEpochsSetTheStepsAndEachRowSaysItsEpoch() throws {
        let dir = CLI.tempDir("epochs")
        let args = writeData(dir) + ["--num-train-epochs", "2"]
        let out = dir + "/run"
        let r = CLI.sftDist(args + ["--out", out])
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stdout.contains("num_train_epochs 2: 2 epochs of 30 training rows at batch_size 8 are 8 steps"), r.stdout)
        let rows = CLI.trainingRows(out)
        XCTAssertEqual(rows.map { $0["step"] ?? 0 }, (1...8).map(Double.init), "⌈2 × 30 ÷ 8⌉ = 8 steps")
        for row in rows {
            XCTAssertEqual(row["epoch"] ?? .nan, (row["step"] ?? 0) / 4, accuracy: 1e-12, "⌈30 ÷ 8⌉ = 4 steps an epoch")
        }
        // Steps 1…4 and 5…8 each train the 30 rows once (8 + 8 + 8 + 6): their loss tokens are
        // those of one step over all 30 rows.
        let whole = CLI.sftDist(writeData(dir) + ["--batch-size", "30", "--steps", "1", "--out", dir + "/whole", "--quiet"])
        XCTAssertEqual(whole.status, 0, whole.all)
        let all = try XCTUnwrap(CLI.trainingRows(dir + "/whole").first?["loss_tokens"])
        let perStep = rows.map { $0["loss_tokens"] ?? 0 }
        XCTAssertEqual(perStep[0..<4].reduce(0, +), all, "\(perStep)")
        XCTAssertEqual(perStep[4..<8].reduce(0, +), all, "\(perStep)")
        let recipe = try String(contentsOfFile: out + "/recipe.yaml", encoding: .utf8)
        XCTAssertTrue(recipe.contains("\nnum_train_epochs: 2") && recipe.contains("\n# steps: 8\n") && !recipe.contains("\nsteps:"), recipe)

        // The run's own recipe.yaml runs again (deriving its steps again), to the same losses;
        // with another batch size it derives other steps.
        let again = CLI.sftDist(["train", "--config", out + "/recipe.yaml", "--out", dir + "/again", "--quiet"])
        XCTAssertEqual(again.status, 0, again.all)
        XCTAssertEqual(CLI.losses(dir + "/again"), CLI.losses(out))
        let wider = CLI.sftDist(["train", "--config", out + "/recipe.yaml", "--batch-size", "10", "--out", dir + "/wider", "--quiet"])
        XCTAssertEqual(wider.status, 0, wider.all)
        XCTAssertEqual(CLI.losses(dir + "/wider").count, 6, "⌈2 × 30 ÷ 10⌉")

        // Under mpirun -n 2 the same steps and losses.
        let two = CLI.mpirun(2, args + ["--out", dir + "/two", "--quiet"])
        XCTAssertEqual(two.status, 0, two.all)
        let l1 = CLI.losses(out), l2 = CLI.losses(dir + "/two")
        XCTAssertEqual(l2.count, 8)
        for (a, b) in zip(l1, l2) { XCTAssertEqual(a, b, accuracy: 1e-5 * max(abs(a), 1e-3)) }

        // Resumed from step 4, the steps 5…8 of the uninterrupted run, bit for bit.
        let saved = dir + "/saved"
        XCTAssertEqual(CLI.sftDist(args + ["--out", saved, "--save-every", "4", "--quiet"]).status, 0)
        let resumed = CLI.sftDist(args + ["--out", dir + "/resumed", "--quiet", "--resume", saved + "/checkpoints/step-000004"])
        XCTAssertEqual(resumed.status, 0, resumed.all)
        XCTAssertEqual(CLI.losses(dir + "/resumed").map(\.bitPattern), l1.map(\.bitPattern))
    }

    func testADisagreeingStepsOrAMethodThatCountsOtherwiseIsRefused() {
        let dir = CLI.tempDir("epochs-refused")
        let args = writeData(dir) + ["--num-train-epochs", "2"]
        let r = CLI.sftDist(args + ["--steps", "5", "--out", dir + "/run"])
        XCTAssertEqual(r.status, 1, r.all)
        XCTAssertTrue(r.stderr.contains("--steps 5 and --num-train-epochs 2 disagree: 2 epochs of 30 training rows at batch_size 8 are 8 steps; give one of them"), r.stderr)
        XCTAssertEqual(CLI.occurrences(of: "error", in: r.stderr), 1, r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/run"), "a refused run leaves no output directory")
        let agreeing = CLI.sftDist(args + ["--steps", "8", "--out", dir + "/agree", "--quiet"])
        XCTAssertEqual(agreeing.status, 0, agreeing.all)
        // --dry-run reads no data, so it cannot tell: it says the run will check (it printed the
        // flag's steps under "the steps num_train_epochs gave this run's data").
        let dry = CLI.sftDist(args + ["--steps", "5", "--dry-run"])
        XCTAssertEqual(dry.status, 0, dry.all)
        XCTAssertTrue(dry.stderr.contains("note: --steps 5 beside --num-train-epochs 2 is checked when the run starts, against the steps the training rows give; --dry-run reads no data"), dry.stderr)
        XCTAssertFalse(dry.stdout.contains("gave this run's data"), dry.stdout)
        // Without --steps it printed "# steps: 1000", the flag's default, for a run of 8 steps.
        let plain = CLI.sftDist(args + ["--dry-run"])
        XCTAssertEqual(plain.status, 0, plain.all)
        XCTAssertTrue(plain.stdout.hasSuffix("# steps follow from num_train_epochs and the training rows, which a run reads (this recipe does not know them yet)\n"), plain.stdout)
        XCTAssertFalse(plain.stdout.contains("steps: 1000"), plain.stdout)

        let selection = CLI.sftDist(["train", "--dry-run", "--num-train-epochs", "1", "--selection", "uds"])
        XCTAssertEqual(selection.status, 1, selection.all)
        XCTAssertTrue(selection.stderr.contains("--num-train-epochs counts passes over the training rows, batch_size of them a step; --selection uds draws a pool"), selection.stderr)
        let grpo = CLI.sftDist(["train", "--dry-run", "--num-train-epochs", "1", "--objective", "grpo", "--reward", "task"])
        XCTAssertEqual(grpo.status, 1, grpo.all)
        XCTAssertTrue(grpo.stderr.contains("--objective grpo samples rollouts"), grpo.stderr)
    }
}
