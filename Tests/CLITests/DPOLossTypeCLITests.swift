import Foundation
import XCTest

/// dpo's `loss_type` (TRL's DPOConfig names; DPOLoss.swift) through the CLI: at step 1 the
/// policy is the reference, so every pair has c = r = 0 and the loss is each type's value
/// there (a closed form per type); the losses and reward means are the same under `mpirun -n 1`
/// and `-n 2` (also under an f-divergence); a bad argument is one line.
final class DPOLossTypeCLITests: XCTestCase {
    func args(_ data: String, _ extra: [String], steps: Int = 1) -> [String] {
        ["train", "--model", "tiny", "--data", data, "--objective", "dpo", "--objective-arg", "beta=0.5",
         "--batch-size", "7", "--micro-batch-size", "3", "--steps", "\(steps)", "--lr", "1e-2", "--warmup-steps", "0",
         "--eval-examples", "0", "--eval-every", "0", "--quiet"] + extra.flatMap { ["--objective-arg", $0] }
    }

    func testStepOneLossIsEachTypesValueAtZeroLogRatios() {
        let data = DPOCLITests.writePairs(CLI.tempDir("dpo-types-data"))
        let ln2 = log(2.0), beta = 0.5
        let cases: [([String], Double)] = [
            ([], ln2), (["loss_type=hinge"], 1), (["loss_type=ipo"], 1 / (4 * beta * beta)),
            (["loss_type=exo_pair", "label_smoothing=0.2"], log(0.5) - 0.5 * log(0.2 * 0.8)),
            (["loss_type=nca_pair"], 2 * ln2), (["loss_type=robust", "label_smoothing=0.2"], ln2),
            (["loss_type=bco_pair"], 2 * ln2), (["loss_type=sppo_hard"], 2 * (0.5 / beta) * (0.5 / beta)),
            (["loss_type=apo_zero"], 1), (["loss_type=apo_down"], 1),
            (["loss_type=discopop", "discopop_tau=0.3"], 0.5 * (ln2 + 1)), (["loss_type=sigmoid_norm"], ln2),
        ]
        for (extra, want) in cases {
            let out = CLI.tempDir("dpo-type")
            let r = CLI.sftDist(args(data, extra) + ["--out", out])
            XCTAssertEqual(r.status, 0, "\(extra): \(r.all)")
            XCTAssertEqual(CLI.losses(out).first ?? .nan, want, accuracy: 1e-6, "\(extra)")
        }
    }

    func testLossTypesAreRankCountInvariant() {
        let data = DPOCLITests.writePairs(CLI.tempDir("dpo-types-ranks"))
        for extra in [["loss_type=ipo"], ["loss_type=robust", "label_smoothing=0.1"], ["loss_type=discopop"],
                      ["f_divergence_type=js_divergence"], ["ld_alpha=0.5"], ["use_weighting=true"]] {
            Self.assertSameRowsAtOneAndTwoRanks(args(data, extra, steps: 4), label: "dpo-\(extra[0])", "\(extra)")
        }
    }

    /// `args` (4 steps) under `mpirun -n 1` and `-n 2`: the loss moves, and each step's `keys`
    /// agree within 2e-5 relative (float summation order).
    static func assertSameRowsAtOneAndTwoRanks(_ args: [String], label: String, _ what: String,
                                               keys: [String] = ["loss", "rewards/margins", "grad_norm"],
                                               file: StaticString = #filePath, line: UInt = #line) {
        let runs = CLI.trainingRows(atRanks: [1, 2], args, label: label, seconds: 90)
        XCTAssertEqual(runs[0].count, 4, what, file: file, line: line)
        XCTAssertNotEqual(runs[0].last?["loss"] ?? .nan, runs[0].first?["loss"] ?? .nan, accuracy: 1e-4, "\(what): the loss never moves", file: file, line: line)
        for (i, (a, b)) in zip(runs[0], runs[1]).enumerated() {
            for key in keys {
                let x = a[key] ?? .nan, y = b[key] ?? .nan
                XCTAssertEqual(x, y, accuracy: 2e-5 * max(1, abs(x)), "\(what) step \(i + 1) \(key): -n 1 \(x), -n 2 \(y)", file: file, line: line)
            }
        }
    }

    /// loss_type and f_divergence_type at their defaults are the arguments a run without them
    /// resolved: a checkpoint of one resumes under the other (it was refused, "objective_args
    /// is {} there but {loss_type: sigmoid} here").
    func testDefaultsGivenOrNotResumeEachOther() {
        let data = DPOCLITests.writePairs(CLI.tempDir("dpo-types-resume"))
        let out = CLI.tempDir("dpo-type-resume")
        XCTAssertEqual(CLI.sftDist(args(data, [], steps: 3) + ["--save-every", "2", "--out", out + "/a"]).status, 0)
        let r = CLI.sftDist(args(data, ["loss_type=sigmoid", "f_divergence_type=reverse_kl", "use_weighting=false"], steps: 3)
                            + ["--save-every", "2", "--out", out + "/b", "--resume", out + "/a/checkpoints/step-000002"])
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertEqual(CLI.losses(out + "/b").map(\.bitPattern), CLI.losses(out + "/a").map(\.bitPattern))
    }

    /// ipo averages each log-ratio over the answer's tokens as TRL's completion_mask counts them:
    /// with an empty prompt and no BOS the first answer token is not predicted but is counted
    /// ("19" + end: 3 tokens, 2 predicted; "2055" + end: 5, 4). Step 2's logged loss is TRL's
    /// formula on its logged rewards (β·c, β·r of the one pair); with the predicted counts it
    /// was 0.000856 where TRL's is 0.1325.
    func testIPOCountsTheAnswersTokensAsTRL() throws {
        let dir = CLI.tempDir("dpo-ipo-empty")
        let data = dir + "/pairs.jsonl"
        try String(repeating: #"{"prompt": "", "chosen": "19", "rejected": "2055"}"# + "\n", count: 4)
            .write(toFile: data, atomically: true, encoding: .utf8)
        let r = CLI.sftDist(["train", "--model", "tiny", "--data", data, "--objective", "dpo", "--objective-arg", "beta=0.5",
                             "--objective-arg", "loss_type=ipo", "--batch-size", "1", "--steps", "2", "--lr", "3e-2",
                             "--warmup-steps", "0", "--eval-examples", "0", "--eval-every", "0", "--quiet", "--out", dir + "/run"])
        XCTAssertEqual(r.status, 0, r.all)
        let step2 = try XCTUnwrap(CLI.trainingRows(dir + "/run").last)
        let c = try XCTUnwrap(step2["rewards/chosen"]) / 0.5, rr = try XCTUnwrap(step2["rewards/rejected"]) / 0.5
        XCTAssertGreaterThan(abs(c - rr), 0.1, "the step moved the log-ratios apart")
        let trl = pow(c / 3 - rr / 5 - 1 / (2 * 0.5), 2)
        XCTAssertEqual(step2["loss"] ?? .nan, trl, accuracy: 1e-5 * max(1, trl), "c \(c), r \(rr)")
    }

    func testBadArgumentsAreOneLine() {
        let data = DPOCLITests.writePairs(CLI.tempDir("dpo-types-bad"))
        Self.assertRefusedInOneLine([(["loss_type=aot"], "unknown loss_type aot (aot, which TRL has too, is not here)"),
                                     (["label_smoothing=0.1"], "label_smoothing is read by loss_type robust and exo_pair"),
                                     (["loss_type=robust", "label_smoothing=0.5"], "label_smoothing must be in [0, 0.5)")]) {
            args(data, $0) + ["--out", CLI.tempDir("dpo-type-bad") + "/run"]
        }
    }

    /// Each case's arguments (`command` of its objective arguments) exit 1 with one line holding its needle.
    static func assertRefusedInOneLine(_ cases: [([String], String)], _ command: ([String]) -> [String],
                                       file: StaticString = #filePath, line: UInt = #line) {
        for (extra, needle) in cases {
            let r = CLI.sftDist(command(extra))
            XCTAssertEqual(r.status, 1, r.all, file: file, line: line)
            XCTAssertTrue(r.stderr.contains(needle), "\(extra): \(r.stderr)", file: file, line: line)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr, file: file, line: line)
        }
    }
}
