import Foundation
import XCTest

/// LoRA dropout with an objective that selects tokens in a statistics pass (token-clean,
/// forgetting, threshold): the statistics pass counted the kept tokens on logits without
/// dropout while the gradient pass selected again on logits with it, so the loss summed one
/// set of tokens and divided by another set's count (kept 47, 39, 43 against 46, 40, 42).
/// Both passes now draw the same masks, and the tokens the gradient pass keeps are exactly
/// the ⌈ratio·n⌉ the normaliser counts.
final class LoRADropoutStatisticsTests: XCTestCase {
    func testTokenCleanKeepsWhatItDividesByUnderLoRADropout() {
        let out = CLI.tempDir("lora-dropout-statistics")
        let r = CLI.sftDist(["train", "--model", "tiny", "--steps", "6", "--objective", "token-clean", "--objective-arg", "ratio=0.5", "--objective-arg", "scores=online",
                             "--lora-rank", "8", "--lora-dropout", "0.5", "--batch-size", "16", "--micro-batch-size", "8",
                             "--lr", "0.05", "--eval-every", "0", "--eval-examples", "0", "--quiet", "--out", out])
        XCTAssertEqual(r.status, 0, r.all)
        let rows = CLI.trainingRows(out)
        XCTAssertEqual(rows.count, 6)
        // Step 1 scores every token 0 (the reference is the initial weights and B = 0), so all
        // tie and all are kept; from step 2 the adapters differ and the scores are distinct.
        for (i, row) in rows.enumerated().dropFirst() {
            let n = row["loss_tokens"] ?? .nan, ratio = row["kept_ratio"] ?? .nan
            XCTAssertEqual((ratio * n).rounded(), (0.5 * n).rounded(.up), "step \(i + 1): kept \(ratio * n) of \(n) tokens")
        }
    }
}
