import Foundation
import XCTest
@testable import Training

/// The figures TRL logs beside the loss — DPOTrainer's `logps/*`, `logits/*`,
/// `mean_token_accuracy` and `entropy`, SFTTrainer's `entropy` — on the DPO fixture's logits
/// (`scripts/make-dpo-reference`), through the real trainer at several rank and micro-batch
/// counts: each is a step-wide mean, so neither count may change it.
final class TRLFiguresTests: XCTestCase {
    let layouts = [(1, 8), (2, 3), (3, 2)]

    func testDPOsLogProbLogitAndEntropyMeansMatchTheReference() throws {
        let ref = DPOTests.fixture.references[0]
        for (ranks, micro) in layouts {
            let got = try DPOTests.harness(microBatchSize: micro).run("dpo", ["beta": "\(ref.beta)"], ranks: ranks)[0]
            for (key, want) in [("logps/chosen", ref.logps_chosen), ("logps/rejected", ref.logps_rejected),
                                ("logits/chosen", ref.logits_chosen), ("logits/rejected", ref.logits_rejected),
                                ("entropy", ref.entropy), ("mean_token_accuracy", ref.mean_token_accuracy)] {
                XCTAssertEqual(got.diagnostics[key] ?? .nan, want, accuracy: 1e-5 * max(1, abs(want)),
                               "\(key) at \(ranks) rank(s), micro-batches of \(micro)")
            }
        }
    }

    /// The reference's chosen tokens are never the largest logit (random logits), so its
    /// accuracy is 0: here every other chosen target is raised above the rest and the share
    /// is counted from the logits themselves.
    func testDPOsTokenAccuracyCountsTheChosenAnswersArgmax() throws {
        let f = DPOTests.fixture, V = f.vocab, T = f.seq_len
        var h = DPOTests.harness(microBatchSize: 2)
        var right = 0, all = 0
        for (e, x) in f.examples.enumerated() where e % 2 == 0 {
            for t in 1..<x.ids.count where x.loss_mask[t] == 1 {
                let row = (e * T + t - 1) * V, y = Int(x.ids[t])
                if all % 2 == 0 { h.current[row + y] += 20 }
                let z = h.current[row..<(row + V)]
                if z.firstIndex(of: z.max()!)! - row == y { right += 1 }
                all += 1
            }
        }
        XCTAssertTrue(right > 0 && right < all, "\(right) of \(all)")
        for (ranks, micro) in layouts {
            h.microBatchSize = micro
            let got = try h.run("dpo", ["beta": "0.1"], ranks: ranks)[0]
            XCTAssertEqual(got.diagnostics["mean_token_accuracy"] ?? .nan, Double(right) / Double(all), accuracy: 1e-12,
                           "\(ranks) rank(s), micro-batches of \(micro)")
        }
    }

    /// nll's `entropy`: the mean over loss tokens of −Σ p log p, computed here in Double.
    func testNLLEntropyIsTheLossTokensMeanEntropy() throws {
        let f = DPOTests.fixture, T = f.seq_len
        var sum = 0.0, n = 0.0
        for (e, x) in f.examples.enumerated() {
            for t in 1..<x.ids.count where x.loss_mask[t] == 1 {
                let z = f.logits.current[e * T + t - 1].map(Double.init)
                let m = z.max()!, lse = m + log(z.map { exp($0 - m) }.reduce(0, +))
                sum -= z.map { exp($0 - lse) * ($0 - lse) }.reduce(0, +)
                n += 1
            }
        }
        for (ranks, micro) in layouts {
            let got = try DPOTests.harness(microBatchSize: micro).run("nll", ranks: ranks)[0]
            XCTAssertEqual(got.diagnostics["entropy"] ?? .nan, sum / n, accuracy: 1e-5, "\(ranks) rank(s), micro-batches of \(micro)")
        }
    }
}
