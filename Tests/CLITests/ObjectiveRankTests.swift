import Foundation
import XCTest

/// Every objective trains under real mpirun and gives the same per-step losses at 1, 2, 3 and
/// 4 ranks (global normalisers, statistics gathered in rank order, OTR sampling keyed on
/// global sequence ids), on a model that already predicts confidently: a fresh model gives
/// every token p ≈ 0.004, so top-p selection keeps nothing and p^10 has no gradient, and the
/// comparison would be 0 against 0.
final class ObjectiveRankTests: XCTestCase {
    static let objectives = ["nll", "dft", "p", "power", "threshold", "asft", "psft", "talr", "iwsft",
                             "otr", "token-clean", "forgetting", "token-clean scores=online", "forgetting scores=online"]
    static let steps = 4

    func testEveryObjectiveIsRankCountInvariantOnAWarmStartedModel() throws {
        // Warm start (≈ 1 s): mean p of the target ≈ 0.5. A second, shorter run is the
        // reference for the objectives that compare against one.
        let warm = CLI.tempDir("obj-warm"), refRun = CLI.tempDir("obj-ref")
        let pretrain = ["train", "--model", "tiny", "--batch-size", "16", "--micro-batch-size", "8", "--eval-examples", "0",
                        "--eval-every", "0", "--quiet", "--lr", "1e-2", "--warmup-steps", "5"]
        XCTAssertEqual(CLI.sftDist(pretrain + ["--steps", "200", "--out", warm]).status, 0)
        XCTAssertEqual(CLI.sftDist(pretrain + ["--steps", "100", "--seed", "7", "--out", refRun]).status, 0)
        // Batch 7: shards of 7 at 1 rank, 4/3 at 2, 3/2/2 at 3 and 2/2/2/1 at 4.
        let base = ["train", "--model", warm + "/model", "--batch-size", "7", "--micro-batch-size", "2", "--steps", "\(Self.steps)",
                    "--eval-examples", "0", "--eval-every", "0", "--quiet", "--checksum-every", "2", "--lr", "3e-3", "--warmup-steps", "1"]
        var failures: [String] = []
        for entry in Self.objectives {
            // "NAME ARG=VALUE": token-clean's and forgetting's online scores beside the default fixed ones.
            let words = entry.split(separator: " ").map(String.init), name = words[0]
            var args = base + ["--objective", name] + words.dropFirst().flatMap { ["--objective-arg", $0] }
            if ["token-clean", "forgetting", "iwsft", "asft"].contains(name) { args += ["--ref-model", refRun + "/model"] }
            if name == "psft" { args += ["--objective-arg", "refresh=2"] }
            var runs: [[[String: Double]]] = []
            for n in [1, 2, 3, 4] {
                let out = CLI.tempDir("obj-\(entry.replacingOccurrences(of: " ", with: "-"))-\(n)")
                let r = CLI.mpirun(n, args + ["--out", out], seconds: 90)
                if r.status != 0 { failures.append("\(entry) -n \(n): exit \(r.status)\n\(r.all)"); break }
                let rows = CLI.trainingRows(out)
                if rows.count != Self.steps { failures.append("\(entry) -n \(n): \(rows.count) training rows, expected \(Self.steps)"); break }
                runs.append(rows)
            }
            guard runs.count == 4 else { continue }
            let losses = runs.map { $0.map { $0["loss"] ?? .nan } }
            XCTAssertTrue(losses[0].allSatisfy(\.isFinite), "\(entry): \(losses[0])")
            // The objective has something to train on: a gradient at every step, and losses that change.
            for (i, row) in runs[0].enumerated() where !((row["grad_norm"] ?? 0) > 1e-3) {
                failures.append("\(entry): step \(i + 1) grad_norm \(row["grad_norm"] ?? .nan): nothing to train on")
            }
            if Set(losses[0]).count < 2 { failures.append("\(entry): the loss never moves: \(losses[0])") }
            if name == "threshold", let kept = runs[0].first?["kept_ratio"], !(kept > 0 && kept < 1) {
                failures.append("threshold: kept ratio \(kept); the selection must keep some tokens and drop others")
            }
            for (k, n) in [2, 3, 4].enumerated() {
                for (i, (a, b)) in zip(losses[0], losses[k + 1]).enumerated() where abs(a - b) > 1e-5 * max(abs(a), 1e-3) {
                    failures.append("\(entry): step \(i + 1) loss \(a) (-n 1) vs \(b) (-n \(n))")
                }
            }
        }
        XCTAssertTrue(failures.isEmpty, failures.joined(separator: "\n"))
    }
}
