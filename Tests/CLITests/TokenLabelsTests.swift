import Foundation
import XCTest

/// token-clean and forgetting with `scores=fixed` (the default, the papers' offline partition,
/// arXiv 2502.01968 / 2508.04329): every loss token of the training set is scored once before
/// the first step, initial weights against `--ref-model`, and the labels hold for the run.
/// Before, the only form scored online with the current model, and without `--ref-model` it
/// compared the model with its own initial weights (every score 0 at step 1) without a word.
final class TokenLabelsTests: XCTestCase {
    static let tiny = ["train", "--model", "tiny", "--steps", "6", "--batch-size", "8", "--micro-batch-size", "2",
                       "--lr", "3e-3", "--warmup-steps", "1", "--eval-examples", "0", "--eval-every", "0", "--quiet"]

    func testFixedLabelsAreScoredOnceRankInvariantAndResumeExactly() throws {
        let dir = CLI.tempDir("token-labels")
        XCTAssertEqual(CLI.sftDist(Self.tiny + ["--steps", "40", "--seed", "7", "--out", dir + "/ref"]).status, 0)
        let run = Self.tiny.filter { $0 != "--quiet" } + ["--objective", "forgetting", "--ref-model", dir + "/ref/model"]
        var rows: [[[String: Double]]] = []
        for n in [1, 2] {
            let r = CLI.mpirun(n, run + ["--out", dir + "/n\(n)"])
            XCTAssertEqual(r.status, 0, r.all)
            // Once, on rank 0, before the first step: the training set's tokens and 70 % kept.
            let line = r.stdout.split(separator: "\n").filter { $0.hasPrefix("forgetting: scored the training set's ") }
            XCTAssertEqual(line.count, 1, r.all)
            XCTAssertTrue(line.first?.contains("(70.0 %)") ?? false, r.all)
            rows.append(CLI.trainingRows(dir + "/n\(n)"))
        }
        XCTAssertEqual(rows[0].count, 6)
        for (i, (a, b)) in zip(rows[0], rows[1]).enumerated() {
            for key in ["loss", "kept_ratio", "grad_norm"] {
                let x = a[key] ?? .nan, y = b[key] ?? .nan
                XCTAssertEqual(x, y, accuracy: 1e-5 * max(abs(x), 1e-3), "step \(i + 1) \(key): -n 1 \(x) vs -n 2 \(y)")
            }
        }
        // The labels are the training set's, not each step's: the kept share moves around 0.7.
        XCTAssertGreaterThan(Set(rows[0].map { $0["kept_ratio"] ?? .nan }).count, 1, "\(rows[0])")

        // Stopped after step 3 and resumed, at 2 ranks and at 1: the scores come with the
        // checkpoint (the resumed model no longer holds the initial weights to score with), and
        // every step equals the uninterrupted run's.
        for ranks in [2, 1] {
            let out = dir + "/part\(ranks)"
            let job = try BackgroundJob.mpirun(2, run + ["--out", out], seconds: 120, environment: ["SFT_DIST_FAULT": "usr1:3"])
            XCTAssertEqual(job.wait().result.status, 75)
            let resumed = CLI.mpirun(ranks, run + ["--out", out, "--resume", "latest"])
            XCTAssertEqual(resumed.status, 0, resumed.all)
            XCTAssertTrue(resumed.stdout.contains("forgetting: the training set's 21208 token scores from the checkpoint: "), resumed.all)
            XCTAssertFalse(resumed.stdout.contains("scored the training set's"), resumed.all)
            let (got, expected) = (CLI.losses(out), CLI.losses(dir + "/n\(ranks)"))
            XCTAssertEqual(got.count, expected.count)
            for (a, b) in zip(got, expected) { XCTAssertEqual(a, b, accuracy: ranks == 2 ? 0 : 1e-5 * abs(b), "resumed at -n \(ranks)") }
        }
    }

    func testFixedScoresNeedAReferenceThatDiffersFromTheModel() throws {
        let dir = CLI.tempDir("token-labels-refused")
        let none = CLI.sftDist(Self.tiny + ["--objective", "token-clean", "--out", dir + "/a"])
        XCTAssertEqual(none.status, 1, none.all)
        XCTAssertTrue(none.stderr.contains("objective token-clean scores its tokens once, ℓ_base − ℓ_ref with the initial weights as the base (scores=fixed, the paper's): it needs --ref-model"), none.all)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/a"))
        // The reference is the model itself: every score 0, refused before a step (once, not per rank).
        XCTAssertEqual(CLI.sftDist(Self.tiny + ["--steps", "2", "--out", dir + "/m"]).status, 0)
        let same = CLI.mpirun(2, Self.tiny + ["--model", dir + "/m/model", "--objective", "token-clean", "--ref-model", dir + "/m/model",
                                              "--out", dir + "/b"])
        XCTAssertEqual(same.status, 1, same.all)
        XCTAssertEqual(CLI.occurrences(of: "objective token-clean scores=fixed: --ref-model holds the initial weights themselves, so every token would score 0", in: same.stderr), 1, same.all)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/b/metrics.jsonl"))
        // Rows generated during training have no labels.
        let selfTrain = CLI.sftDist(Self.tiny + ["--objective", "token-clean", "--ref-model", dir + "/m/model", "--self-train", "rft",
                                                 "--out", dir + "/c"])
        XCTAssertEqual(selfTrain.status, 1, selfTrain.all)
        XCTAssertTrue(selfTrain.stderr.contains("--self-train rft trains on rows generated later, which have none: use --objective-arg scores=online"), selfTrain.all)
        // Online scores keep working without --ref-model (the initial weights are the reference).
        XCTAssertEqual(CLI.sftDist(Self.tiny + ["--steps", "2", "--objective", "token-clean", "--objective-arg", "scores=online", "--out", dir + "/d"]).status, 0)
    }
}
