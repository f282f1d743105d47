import Foundation
import XCTest

/// dpo with several loss types (TRL's `loss_type` list and `loss_weights`; the `sft` type) through
/// the CLI: RPO (sigmoid + α·sft) and MPO (sigmoid, bco_pair, sft at 0.8, 0.2, 1). At step 1
/// the policy is the reference, so each pair type is its value at zero log-ratios and sft is
/// the chosen answers' mean token NLL, read off the logged `logps/chosen` when every chosen
/// answer has the same number of tokens. Also: `-n 1` and `-n 2` agree, the YAML list form
/// is the flag form, a checkpoint resumes exactly, and weights of 1 are the default.
final class DPOLossMixCLITests: XCTestCase {
    func args(_ data: String, _ extra: [String], steps: Int = 1, batch: Int = 7) -> [String] {
        ["train", "--model", "tiny", "--data", data, "--objective", "dpo", "--objective-arg", "beta=0.5",
         "--batch-size", "\(batch)", "--micro-batch-size", "3", "--steps", "\(steps)", "--lr", "1e-2", "--warmup-steps", "0",
         "--eval-examples", "0", "--eval-every", "0", "--quiet"] + extra.flatMap { ["--objective-arg", $0] }
    }

    /// Four pairs whose chosen answers are two digits and the end token: 3 predicted tokens each.
    func writeEqualLengthPairs(_ dir: String) -> String {
        let lines = [("3+9=", "12", "13"), ("20+14=", "34", "340"), ("50+6=", "56", "5"), ("70+8=", "78", "87")]
            .map { #"{"prompt": "\#($0.0)", "chosen": "\#($0.1)", "rejected": "\#($0.2)"}"# }
        let path = dir + "/pairs.jsonl"
        FileManager.default.createFile(atPath: path, contents: Data(lines.joined(separator: "\n").utf8))
        return path
    }

    func testStepOneLossIsTheWeightedSumWithTheChosenTokensNLL() throws {
        let data = writeEqualLengthPairs(CLI.tempDir("dpo-mix-data"))
        let ln2 = log(2.0)
        // (arguments, pair part at zero log-ratios, sft weight)
        let cases: [([String], Double, Double)] = [
            (["loss_type=sft"], 0, 1),
            (["loss_type=sigmoid,sft", "loss_weights=1,0.7"], ln2, 0.7),
            (["loss_type=sigmoid,bco_pair,sft", "loss_weights=0.8,0.2,1"], 0.8 * ln2 + 0.2 * 2 * ln2, 1),
            (["loss_type=hinge,sppo_hard", "loss_weights=2,0.5"], 2 * 1 + 0.5 * 2 * 1.0 * 1.0, 0),
        ]
        for (extra, pairPart, sftWeight) in cases {
            let out = CLI.tempDir("dpo-mix")
            let r = CLI.sftDist(args(data, extra, batch: 4) + ["--out", out])
            XCTAssertEqual(r.status, 0, "\(extra): \(r.all)")
            let row = try XCTUnwrap(CLI.trainingRows(out).first, "\(extra)")
            let nll = -(try XCTUnwrap(row["logps/chosen"])) / 3
            XCTAssertGreaterThan(nll, 0.5, "\(extra): an untrained model's token NLL")
            XCTAssertEqual(row["loss"] ?? .nan, pairPart + sftWeight * nll, accuracy: 1e-5 * max(1, pairPart + nll), "\(extra)")
        }
    }

    func testMixesAreRankCountInvariant() {
        let data = DPOCLITests.writePairs(CLI.tempDir("dpo-mix-ranks"))
        for extra in [["loss_type=sigmoid,sft", "loss_weights=1,0.7"], ["loss_type=sigmoid,bco_pair,sft", "loss_weights=0.8,0.2,1", "ld_alpha=0.5"]] {
            DPOLossTypeCLITests.assertSameRowsAtOneAndTwoRanks(args(data, extra, steps: 4), label: "dpo-mix", "\(extra)")
        }
    }

    /// A YAML list (`loss_type: [sigmoid, sft]`, TRL's form) is the comma-separated flag; a run
    /// given the flags resumes from the recipe run's checkpoint, bit-exact; `loss_weights` of
    /// all 1 resolve as none given.
    func testYAMLListsFlagsAndResume() throws {
        let data = DPOCLITests.writePairs(CLI.tempDir("dpo-mix-yaml"))
        let dir = CLI.tempDir("dpo-mix-run")
        try """
        objective_args:
          loss_type: [sigmoid, bco_pair, sft]
          loss_weights: [0.8, 0.2, 1]
        """.write(toFile: dir + "/recipe.yaml", atomically: true, encoding: .utf8)
        let a = CLI.sftDist(args(data, [], steps: 3) + ["--config", dir + "/recipe.yaml", "--save-every", "2", "--out", dir + "/a"])
        XCTAssertEqual(a.status, 0, a.all)
        let b = CLI.sftDist(args(data, ["loss_type=sigmoid,bco_pair,sft", "loss_weights=0.8,0.2,1"], steps: 3)
                            + ["--out", dir + "/b", "--resume", dir + "/a/checkpoints/step-000002"])
        XCTAssertEqual(b.status, 0, b.all)
        XCTAssertEqual(CLI.losses(dir + "/b").map(\.bitPattern), CLI.losses(dir + "/a").map(\.bitPattern))
        let c = CLI.sftDist(args(data, ["loss_type=sigmoid,bco_pair,sft", "loss_weights=1, 1,1"], steps: 3)
                            + ["--out", dir + "/c", "--resume", dir + "/a/checkpoints/step-000002"])
        XCTAssertEqual(c.status, 1, "other weights than the checkpoint's: \(c.all)")
        // Weights of 1 are the default: a run given none resumes under loss_weights=1,1.
        let d = CLI.sftDist(args(data, ["loss_type=sigmoid, sft"], steps: 2) + ["--save-every", "1", "--out", dir + "/d"])
        let e = CLI.sftDist(args(data, ["loss_type=sigmoid,sft", "loss_weights=1,1"], steps: 2)
                            + ["--out", dir + "/e", "--resume", dir + "/d/checkpoints/step-000001"])
        XCTAssertEqual(d.status, 0, d.all); XCTAssertEqual(e.status, 0, e.all)
        XCTAssertEqual(CLI.losses(dir + "/e").map(\.bitPattern), CLI.losses(dir + "/d").map(\.bitPattern))
    }

    func testBadListsAreOneLine() {
        let data = DPOCLITests.writePairs(CLI.tempDir("dpo-mix-bad"))
        DPOLossTypeCLITests.assertRefusedInOneLine([(["loss_type=sigmoid,sft", "loss_weights=1"], "loss_weights has 1 weight(s) for 2 loss type(s)"),
                                                    (["loss_type=sigmoid,aot"], "unknown loss_type aot (aot, which TRL has too, is not here)"),
                                                    (["loss_type=sft", "use_weighting=true"], "use_weighting weighs each pair's loss")]) {
            args(data, $0) + ["--out", CLI.tempDir("dpo-mix-bad") + "/run"]
        }
    }
}
