import Foundation
import XCTest

/// `--recompute`: each transformer block re-run in backward from its kept input gives the
/// same gradients as keeping its activations, so the losses are bit-identical (GPT-2 and
/// Llama blocks, LoRA with dropout, one rank and two ranks with ZeRO-2), and `sft-dist bench --recompute`
/// reports its time and memory.
final class RecomputeTests: XCTestCase {
    let tiny = ["train", "--model", "tiny", "--steps", "8", "--batch-size", "8", "--micro-batch-size", "4",
                "--lr", "3e-3", "--warmup-steps", "2", "--eval-every", "0", "--eval-examples", "2", "--max-new-tokens", "2", "--quiet"]

    func assertBitIdentical(_ a: [Double], _ b: [Double], _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, 8, label, file: file, line: line)
        XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern), "\(label): \(a) vs \(b)", file: file, line: line)
    }

    func losses(_ ranks: Int, _ args: [String], _ label: String) -> [Double] {
        let out = CLI.tempDir("recompute-\(label)")
        let r = ranks == 1 ? CLI.sftDist(args + ["--out", out]) : CLI.mpirun(ranks, args + ["--out", out])
        XCTAssertEqual(r.status, 0, "\(label):\n\(r.all)")
        return CLI.losses(out)
    }

    func testRecomputedBlocksGiveBitIdenticalLosses() {
        assertBitIdentical(losses(1, tiny, "gpt2"), losses(1, tiny + ["--recompute"], "gpt2-r"), "gpt2 tiny")
        let llama = ["train", "--model", HFModelCLITests.model("llama"), "--data", HFModelCLITests.data, "--steps", "8",
                     "--batch-size", "8", "--micro-batch-size", "4", "--warmup-steps", "0", "--lr", "3e-3",
                     "--eval-every", "0", "--eval-examples", "0", "--quiet"]
        assertBitIdentical(losses(1, llama, "llama"), losses(1, llama + ["--recompute"], "llama-r"), "llama fixture")
        // LoRA dropout's masks are set for the forward only: the re-run must see the same ones.
        let lora = tiny + ["--lora-rank", "4", "--lora-dropout", "0.3"]
        assertBitIdentical(losses(1, lora, "lora"), losses(1, lora + ["--recompute"], "lora-r"), "gpt2 tiny, LoRA dropout 0.3")
        assertBitIdentical(losses(2, tiny + ["--zero", "2"], "zero2"), losses(2, tiny + ["--zero", "2", "--recompute"], "zero2-r"),
                           "-n 2 --zero 2")
    }

    /// The point of `--recompute` is memory: gpt2-mini's six blocks' activations (≈ 330 MiB of
    /// a ≈ 670 MiB peak) shrink to one block's plus the block inputs, so the measured peak RSS
    /// of one step must drop well below the run that keeps them (≈ 390 MiB when measured).
    func testBenchReportsRecomputeAndItsMemorySaving() throws {
        func bench(_ extra: [String]) throws -> [String: Any] {
            let r = CLI.sftDist(["bench", "--steps", "1", "--warmup", "0", "--generate-tokens", "0", "--json", "--quiet"] + extra, seconds: 300)
            XCTAssertEqual(r.status, 0, r.all)
            return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        }
        let kept = try bench([]), recomputed = try bench(["--recompute"])
        XCTAssertEqual(recomputed["recompute"] as? Bool, true)
        XCTAssertEqual(kept["recompute"] as? Bool, false)
        let rss = { (j: [String: Any]) in (j["peak_rss_bytes"] as? NSNumber)?.doubleValue ?? 0 }
        XCTAssertGreaterThan(rss(kept), 0)
        XCTAssertLessThan(rss(recomputed), 0.75 * rss(kept), "peak RSS \(rss(recomputed)) with --recompute vs \(rss(kept)) without")
        XCTAssertEqual(recomputed["first_loss"] as? Double, kept["first_loss"] as? Double, "same step, same loss")
    }
}
