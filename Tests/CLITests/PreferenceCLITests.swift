import Foundation
import XCTest

/// cpo and orpo (preference pairs, no reference model) through the CLI: with one pair a step,
/// step 1's loss is each method's formula on the logged log-probs and NLL; the losses are the
/// same under `mpirun -n 1` and `-n 2`; a resumed run continues bit-exact; the held-out pairs
/// are evaluated with the objective; NEFTune, refused beside dpo's reference, is accepted here.
final class PreferenceCLITests: XCTestCase {
    func args(_ data: String, _ objective: String, _ extra: [String], steps: Int = 1, batch: Int = 7) -> [String] {
        ["train", "--model", "tiny", "--data", data, "--objective", objective,
         "--batch-size", "\(batch)", "--micro-batch-size", "3", "--steps", "\(steps)", "--lr", "1e-2", "--warmup-steps", "0",
         "--eval-examples", "0", "--eval-every", "0", "--quiet"] + extra.flatMap { ["--objective-arg", $0] }
    }

    static func softplus(_ x: Double) -> Double { x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)) }
    static func log1mexp(_ x: Double) -> Double { log(-expm1(x)) }

    func testStepOneLossIsTheFormulaOnTheLoggedFigures() throws {
        let dir = CLI.tempDir("pref-formula")
        try #"{"prompt": "3+9=", "chosen": "12", "rejected": "130"}"#.write(toFile: dir + "/p.jsonl", atomically: true, encoding: .utf8)
        // (objective, arguments, loss from (ℓ_w, ℓ_l, nll) as logged)
        let cases: [(String, [String], (Double, Double, Double) -> Double)] = [
            ("cpo", [], { w, l, nll in Self.softplus(-0.1 * (w - l)) + nll }),
            ("cpo", ["loss_type=simpo", "beta=2", "cpo_alpha=0.5", "simpo_gamma=1"], { w, l, nll in Self.softplus(-2 * (w - l - 0.5)) + 0.5 * nll }),
            ("cpo", ["loss_type=ipo", "beta=0.5"], { w, l, nll in pow(w - l - 1, 2) + nll }),
            ("cpo", ["alpha=0.3", "cpo_alpha=0"], { w, l, _ in Self.softplus(-0.1 * ((1 - exp(-0.3 * w)) - (1 - exp(-0.3 * l))) / 0.3) }),
            ("orpo", ["beta=0.5"], { w, l, nll in nll + 0.5 * Self.softplus(-((w - l) - (Self.log1mexp(w) - Self.log1mexp(l)))) }),
        ]
        for (objective, extra, formula) in cases {
            let out = dir + "/\(objective)-\(extra.count)-\(extra.first ?? "")"
            let r = CLI.sftDist(args(dir + "/p.jsonl", objective, extra, batch: 1) + ["--out", out])
            XCTAssertEqual(r.status, 0, "\(objective) \(extra): \(r.all)")
            let row = try XCTUnwrap(CLI.trainingRows(out).first, "\(objective) \(extra)")
            let w = try XCTUnwrap(row["logps/chosen"]), l = try XCTUnwrap(row["logps/rejected"])
            // cpo's nll_loss is the chosen answer's mean token NLL: ℓ_w itself when the loss averages,
            // as simpo and ipo do (the same tokens); orpo's covers the prompt's tokens too (TRL's).
            let nll = row["nll_loss"] ?? 0
            if ["simpo", "ipo"].contains(where: { extra.first?.hasSuffix($0) == true }) {
                XCTAssertEqual(nll, -w, accuracy: 1e-5, "\(objective) \(extra): nll_loss against the mean log-prob")
            }
            let want = formula(w, l, nll)
            XCTAssertEqual(row["loss"] ?? .nan, want, accuracy: 1e-5 * max(1, abs(want)), "\(objective) \(extra)")
        }
    }

    func testRankCountInvariantResumedAndEvaluated() {
        let data = DPOCLITests.writePairs(CLI.tempDir("pref-ranks"))
        for (objective, extra) in [("cpo", ["loss_type=simpo", "beta=2"]), ("orpo", [String]())] {
            DPOLossTypeCLITests.assertSameRowsAtOneAndTwoRanks(args(data, objective, extra, steps: 4), label: objective, objective,
                                                               keys: ["loss", "rewards/margins", "nll_loss", "grad_norm"])
            let out = CLI.tempDir("pref-resume")
            let evalArgs = ["--eval-examples", "6", "--eval-every", "2"]
            XCTAssertEqual(CLI.sftDist(args(data, objective, extra, steps: 3) + evalArgs + ["--save-every", "2", "--out", out + "/a"]).status, 0)
            let r = CLI.sftDist(args(data, objective, extra, steps: 3) + evalArgs + ["--out", out + "/b", "--resume", out + "/a/checkpoints/step-000002"])
            XCTAssertEqual(r.status, 0, r.all)
            XCTAssertEqual(CLI.losses(out + "/b").map(\.bitPattern), CLI.losses(out + "/a").map(\.bitPattern), objective)
            let evals = CLI.evalRows(out + "/a")
            XCTAssertFalse(evals.isEmpty, "\(objective): no evaluation row")
            XCTAssertNotNil(evals.first?["eval_rewards/margins"], "\(objective): the held-out pairs are evaluated with the objective")
        }
    }

    func testNEFTuneIsAcceptedWithoutAReference() {
        let data = DPOCLITests.writePairs(CLI.tempDir("pref-neftune"))
        let ok = CLI.sftDist(args(data, "orpo", [], steps: 2) + ["--neftune-noise-alpha", "5", "--out", CLI.tempDir("pref-nef") + "/run"])
        XCTAssertEqual(ok.status, 0, ok.all)
        let refused = CLI.sftDist(args(data, "dpo", [], steps: 2) + ["--neftune-noise-alpha", "5", "--out", CLI.tempDir("pref-nef") + "/run"])
        XCTAssertEqual(refused.status, 1, refused.all)
    }
}
