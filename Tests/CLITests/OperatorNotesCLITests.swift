import Foundation
import XCTest

/// What a batch-job operator is told (a hostile review, 2026-12-07): a new run into a finished
/// run's --out replaces its model and metrics, said once; a SemiEvol round that keeps no
/// pseudo-label says so, as SuperHF's does.
final class OperatorNotesCLITests: XCTestCase {
    func testANewRunIntoAFinishedRunsOutSaysItReplacesIt() {
        let out = CLI.tempDir("replaced-run")
        let run = ["train", "--model", "tiny", "--steps", "2", "--batch-size", "4", "--eval-every", "0", "--eval-examples", "0", "--quiet", "--out", out]
        let first = CLI.sftDist(run + ["--save-every", "1"])
        XCTAssertEqual(first.status, 0, first.all)
        XCTAssertFalse(first.stderr.contains("is an earlier run's"), first.all)
        // Resumed, the model is the run's own: nothing said.
        let resumed = CLI.sftDist(run + ["--save-every", "1", "--resume", "latest"])
        XCTAssertEqual(resumed.status, 0, resumed.all)
        XCTAssertFalse(resumed.stderr.contains("is an earlier run's"), resumed.all)
        try? FileManager.default.removeItem(atPath: out + "/checkpoints")
        let again = CLI.sftDist(run)
        XCTAssertEqual(again.status, 0, again.all)
        XCTAssertEqual(CLI.occurrences(of: "sft-dist: note: \(out)/model/ is an earlier run's, which this run replaces at its end, as it replaced that run's \(out)/metrics.jsonl", in: again.stderr), 1, again.all)
    }

    func testASemiEvolRoundThatKeepsNothingSaysSo() throws {
        let dir = CLI.tempDir("semievol-none")
        CLI.writeJSONL(dir + "/u.jsonl", (0..<20).map { ["prompt": "add \($0) \($0 + 1) ="] })
        let r = CLI.sftDist(["train", "--model", "tiny", "--steps", "2", "--self-train", "semievol", "--self-train-every", "1", "--unlabelled", dir + "/u.jsonl",
                             "--self-train-arg", "percentile=0", "--self-train-arg", "prompts=8", "--eval-every", "0", "--eval-examples", "0",
                             "--quiet", "--out", dir + "/run"])
        XCTAssertEqual(r.status, 0, r.all)
        for round in 1...2 {
            XCTAssertTrue(r.stderr.contains("sft-dist: warning: self-training round \(round) (step \(round)): semievol kept no pseudo-label"), r.all)
        }
        XCTAssertEqual(CLI.trainingRows(dir + "/run").compactMap { $0["self_train_rows"] }, [0, 0])
    }
}
