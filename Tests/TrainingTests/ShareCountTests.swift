import Foundation
import XCTest
@testable import Training

/// Shares that size a count — Q-Tuning's token_budget, every selector's budget, token-clean's
/// and forgetting's ratio — are read as the decimals given. Read in float32 they moved the
/// count: 0.7 is 0.69999999, and ⌊0.7·10⌋ kept 6 tokens of 10 where the papers' Python keeps 7;
/// ⌈0.6·10⌉ kept 7 of 10; budget 0.35 trained 3 of 10 candidates where `select --keep 0.35`
/// keeps 4.
final class ShareCountTests: XCTestCase {
    func context(batch: Int, pool: Int) -> SelectionRegistry.Context {
        SelectionRegistry.Context(batchSize: batch, pool: pool, seed: 1, maxLength: 16, vocabSize: 8, hasReference: false)
    }

    func testQTuningKeepsTheTokenBudgetOfTen() throws {
        let made = try XCTUnwrap(SelectionRegistry.make(name: "q-tuning", args: [:], context: context(batch: 2, pool: 2)))
        let q = try XCTUnwrap(made.0 as? QTuningSelector)
        XCTAssertEqual(q.tokenBudget, 0.7)
        let ppl = (0..<10).map { Double($0 + 1) }
        XCTAssertEqual(QTuningSelector.keptTokens(ppl: ppl, lambda: 0.5, budget: q.tokenBudget).count, 7)
        for (given, kept) in [("0.9", 9), ("0.3", 3), ("0.7", 7)] {
            let g = try XCTUnwrap(SelectionRegistry.make(name: "q-tuning", args: ["token_budget": given], context: context(batch: 2, pool: 2))?.0 as? QTuningSelector)
            XCTAssertEqual(QTuningSelector.keptTokens(ppl: ppl, lambda: 0.5, budget: g.tokenBudget).count, kept, "token_budget=\(given)")
        }
    }

    /// budget · candidates, rounded as `select --keep` rounds keep · rows.
    func testABudgetKeepsWhatSelectKeeps() throws {
        for (budget, keep) in [("0.35", 4), ("0.45", 5), ("0.25", 3)] {
            let made = try XCTUnwrap(SelectionRegistry.make(name: "loss", args: ["budget": budget], context: context(batch: 5, pool: 2)))
            XCTAssertEqual(made.keep, keep, "budget \(budget) of 10")
            XCTAssertEqual(made.keep, Int((Double(budget)! * 10).rounded()), "as select rounds")
        }
    }

    func testTokenCleanAndForgettingKeepTheirRatioOfTen() throws {
        for (name, ratio, kept) in [("token-clean", "0.6", 6), ("token-clean", "0.2", 2), ("forgetting", "0.7", 7), ("forgetting", "0.9", 9)] {
            let o = try ObjectiveRegistry.make(name: name, args: ["ratio": ratio, "scores": "online"])
            let share = try XCTUnwrap((o as? TokenCleanObjective)?.ratio ?? (o as? ForgettingObjective)?.ratio)
            var scores = (0..<10).map { Float($0) }
            XCTAssertEqual(ExcessLossSelection.topRatio(&scores, ratio: share).kept, kept, "\(name) ratio=\(ratio)")
        }
    }

    /// Recorded for resume as before (the float32 reading's text): a checkpoint's arguments compare.
    func testTheResolvedTextIsUnchanged() throws {
        let args = try SelectionRegistry.build(name: "q-tuning", args: ["token_budget": "0.7"], context: context(batch: 3, pool: 3)).resolved
        XCTAssertEqual(args["token_budget"], "0.7")
        XCTAssertEqual(args["budget"], "\(Float(1.0 / 3))")
    }
}
