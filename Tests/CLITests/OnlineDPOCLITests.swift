import Foundation
import XCTest

/// online-dpo through the CLI (TRL's OnlineDPOTrainer): at step 1 the policy is the reference,
/// so the loss is log 2 (sigmoid) or 1/(4β²) (ipo) and objective/kl is 0; the chosen answer
/// never scores below the rejected one; `objective/scores` is the mean reward less the penalty
/// on the answers that did not stop; the same rows under `mpirun -n 1` and `-n 2`; a run
/// resumed inside a generation goes on bit-exact; settings it cannot use are refused.
final class OnlineDPOCLITests: XCTestCase {
    static func args(_ extra: [String] = [], steps: Int = 4) -> [String] {
        ["train", "--model", GRPOCLITests.warm, "--objective", "online-dpo", "--reward", "numeric", "--reward-arg", "numeric.tolerance=0.3",
         "--reward", "format=0.1", "--batch-size", "16", "--micro-batch-size", "3", "--steps", "\(steps)",
         "--steps-per-generation", "2", "--max-completion-length", "6", "--lr", "3e-3", "--warmup-steps", "0",
         "--eval-examples", "0", "--eval-every", "0", "--quiet"] + extra
    }

    func testStepOneAndTheFiguresFollowTheirDefinitions() throws {
        for (extra, stepOne) in [([String](), log(2.0)), (["--objective-arg", "loss_type=ipo", "--objective-arg", "beta=0.5"], 1.0)] {
            let out = CLI.tempDir("online-dpo")
            let r = CLI.sftDist(Self.args(extra + ["--objective-arg", "missing_eos_penalty=2"]) + ["--out", out])
            XCTAssertEqual(r.status, 0, r.all)
            let rows = CLI.trainingRows(out)
            XCTAssertEqual(rows.count, 4, "\(extra)")
            XCTAssertEqual(rows.first?["loss"] ?? .nan, stepOne, accuracy: 1e-6, "\(extra)")
            XCTAssertEqual(rows.first?["objective/kl"] ?? .nan, 0, accuracy: 1e-6, "\(extra)")
            XCTAssertNotEqual(rows.last?["objective/kl"] ?? 0, 0, "\(extra): the policy moved from the reference")
            for row in rows {
                XCTAssertGreaterThanOrEqual(row["objective/scores_margin"] ?? -1, 0, "\(extra): \(row)")
                let contain = try XCTUnwrap(row["val/contain_eos_token"])
                XCTAssertEqual(row["objective/scores"] ?? .nan, (row["reward"] ?? .nan) - 2 * (1 - contain), accuracy: 1e-6, "\(row)")
                XCTAssertEqual(row["objective/rlhf_reward"] ?? .nan, (row["objective/scores"] ?? .nan) + (row["objective/non_score_reward"] ?? .nan),
                               accuracy: 1e-5, "\(row)")
            }
        }
    }

    func testRankCountInvariantAndResumedInsideAGeneration() {
        let runs = CLI.trainingRows(atRanks: [1, 2], Self.args(), label: "online-dpo", seconds: 240)
        XCTAssertEqual(runs[0].count, 4)
        for (a, b) in zip(runs[0], runs[1]) {
            for key in ["loss", "grad_norm", "objective/kl", "rewards/margins", "objective/scores"] {
                let x = a[key] ?? .nan
                XCTAssertEqual(x, b[key] ?? .nan, accuracy: 1e-6 + 1e-4 * abs(x), "step \(a["step"] ?? 0) \(key), -n 1 vs -n 2")
            }
        }
        // Step 2 is the second of its generation: the ranked pairs come from the checkpoint.
        CLI.assertResumesBitExact(Self.args(steps: 3), every: 1, label: "online-dpo-resume")
    }

    /// The run's recipe.yaml says rollouts 2 (it said the default 8, which read back was refused),
    /// so it runs again; zero reward weights are accepted beside a missing_eos_penalty, which
    /// ranks the pairs alone (they were refused: "every advantage would be 0"). A review's finds.
    func testItsRecipeRunsAgainAndAPenaltyAloneRanks() throws {
        let dir = CLI.tempDir("online-dpo-recipe")
        let r = CLI.sftDist(Self.args(steps: 2) + ["--save-every", "1", "--out", dir + "/run"])
        XCTAssertEqual(r.status, 0, r.all)
        let yaml = try String(contentsOfFile: dir + "/run/recipe.yaml", encoding: .utf8)
        XCTAssertTrue(yaml.contains("\nrollouts: 2\n"), yaml)
        let again = CLI.sftDist(["train", "--config", dir + "/run/recipe.yaml", "--out", dir + "/again", "--quiet"])
        XCTAssertEqual(again.status, 0, again.all)
        XCTAssertEqual(CLI.losses(dir + "/again").map(\.bitPattern), CLI.losses(dir + "/run").map(\.bitPattern))
        // And it resumes the run's checkpoint (rollouts unset there, 2 in the file: the same run).
        let resumed = CLI.sftDist(["train", "--config", dir + "/run/recipe.yaml", "--out", dir + "/resumed", "--quiet",
                                   "--resume", dir + "/run/checkpoints/step-000001"])
        XCTAssertEqual(resumed.status, 0, resumed.all)
        XCTAssertEqual(CLI.losses(dir + "/resumed").map(\.bitPattern), CLI.losses(dir + "/run").map(\.bitPattern))
        let penalty = ["train", "--model", GRPOCLITests.warm, "--objective", "online-dpo", "--reward", "format=0", "--batch-size", "8",
                       "--steps", "1", "--max-completion-length", "2", "--eval-examples", "0", "--quiet"]
        let ok = CLI.sftDist(penalty + ["--objective-arg", "missing_eos_penalty=1", "--out", dir + "/p"])
        XCTAssertEqual(ok.status, 0, ok.all)
        let refused = CLI.sftDist(penalty + ["--out", dir + "/q"])
        XCTAssertEqual(refused.status, 1, refused.all)
        XCTAssertTrue(refused.stderr.contains("every reward weight is 0"), refused.all)
    }

    func testSettingsItCannotUseAreRefused() {
        for (extra, needle) in [(["--rollouts", "4"], "--rollouts 4: objective online-dpo samples 2 answers per prompt"),
                                (["--scale-rewards", "batch"], "--scale-rewards normalises advantages; objective online-dpo ranks each pair by its raw score"),
                                (["--objective-arg", "loss_type=hinge"], "loss_type must be sigmoid or ipo"),
                                (["--objective-arg", "missing_eos_penalty=-1"], "missing_eos_penalty must be ≥ 0"),
                                (["--batch-size", "15"], "batch_size (15) must be a multiple of rollouts (2)"),
                                (["--mask-truncated-completions"], "--mask-truncated-completions masks a truncated answer's tokens; objective online-dpo")] {
            let r = CLI.sftDist(Self.args(extra) + ["--out", CLI.tempDir("online-dpo-bad") + "/run"])
            XCTAssertEqual(r.status, 1, "\(extra): \(r.all)")
            XCTAssertTrue(r.stderr.contains(needle), "\(extra): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        }
    }
}
