import Foundation
import XCTest

/// `--recompute`: each transformer block re-run in backward from its kept input gives the
/// same gradients as keeping its activations, so the losses are bit-identical (GPT-2 and
/// Llama blocks, one rank and two ranks with ZeRO-2), and `sft-dist bench --recompute`
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
        assertBitIdentical(losses(2, tiny + ["--zero", "2"], "zero2"), losses(2, tiny + ["--zero", "2", "--recompute"], "zero2-r"),
                           "-n 2 --zero 2")
    }

    func testBenchReportsRecompute() throws {
        let r = CLI.sftDist(["bench", "--steps", "1", "--warmup", "0", "--generate-tokens", "0", "--recompute", "--json", "--quiet"], seconds: 300)
        XCTAssertEqual(r.status, 0, r.all)
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        XCTAssertEqual(json?["recompute"] as? Bool, true, r.stdout)
        XCTAssertGreaterThan((json?["peak_rss_bytes"] as? NSNumber)?.intValue ?? 0, 0, r.stdout)
    }
}
