import Foundation
import XCTest

/// `sft-dist bench --rollouts`: every prompt's tokens are generated and counted once when the
/// prompts are dealt over two ranks (3 prompts: uneven shares), and every run's CPU time is
/// reported; speed is not a test's business.
final class BenchRolloutsTests: XCTestCase {
    func testRolloutBenchCountsEveryTokenAtTwoRanks() throws {
        let r = CLI.mpirun(2, ["bench", "--rollouts", "--threads", "1", "--rollout-prompts", "3", "--generate-tokens", "4",
                               "--steps", "2", "--warmup", "0", "--json", "--quiet"], seconds: 240)
        XCTAssertEqual(r.status, 0, r.all)
        let line = try XCTUnwrap(r.stdout.split(separator: "\n").last, r.all)
        let j = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], String(line))
        XCTAssertEqual(j["ranks"] as? Int, 2)
        XCTAssertEqual(j["tokens"] as? Int, 12, "3 prompts × 4 tokens, no stop id")
        XCTAssertEqual((j["run_s"] as? [Any])?.count, 2)
        let rate = try XCTUnwrap(j["tokens_per_s"] as? Double, String(line))
        let median = try XCTUnwrap(j["median_run_s"] as? Double, String(line))
        XCTAssertEqual(rate, 12 / median, accuracy: 1e-3 * rate)
        // CPU time per run, both ranks' processes summed: positive, and the rate follows it.
        let cpu = try XCTUnwrap(j["run_cpu_s"] as? [Double], String(line))
        XCTAssertEqual(cpu.count, 2)
        XCTAssertTrue(cpu.allSatisfy { $0 > 0 }, "\(cpu)")
        let cpuMedian = try XCTUnwrap(j["median_run_cpu_s"] as? Double, String(line))
        XCTAssertEqual(try XCTUnwrap(j["tokens_per_cpu_s"] as? Double), 12 / cpuMedian, accuracy: 1e-3 * 12 / cpuMedian)
    }

    func testRolloutsWithoutNewTokensIsRefused() {
        let r = CLI.sftDist(["bench", "--rollouts", "--generate-tokens", "0"], seconds: 60)
        XCTAssertNotEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stderr.contains("--generate-tokens"), r.stderr)
    }

    /// Settings of a mode that is not running would be ignored: one line naming what they need.
    func testSettingsOfAModeNotRunningAreRefused() {
        for (flags, needle) in [(["--rollout-prompts", "8"], "--rollout-prompts needs --rollouts"),
                                (["--selection-pool", "2"], "--selection-pool needs --selection"),
                                (["--rollouts", "--zero", "1"], "--rollouts times generation only"),
                                (["--rollouts", "--recompute"], "--rollouts times generation only"),
                                (["--rollouts", "--selection", "random"], "--rollouts times generation only"),
                                // Generation has no gradients to sync: the flag did nothing.
                                (["--rollouts", "--no-overlap-grad-sync"], "--[no-]overlap-grad-sync are for the training step"),
                                (["--seq-len", "16", "--selection", "random"], "--selection times its scoring pass on gpt2-mini's batch 8×256 only"),
                                (["--rollouts", "--generate-tokens", "300"], "--generate-tokens 300: gpt2-mini's context of 256 tokens leaves 240"),
                                (["--model", "tiny"], "--model takes a model directory; tiny is a train preset"),
                                (["--lora-rank", "-1"], "--lora-rank must be an integer in 0…4096 (got -1)"),
                                // A hostile review: the training benchmark's generation was cut at
                                // the context silently, --against-full ignored --generate-tokens, a
                                // rank above gpt2-mini's width was taken, --zero -1 read as a missing
                                // value, and an absurd batch filled the machine's memory.
                                (["--generate-tokens", "300"], "--generate-tokens 300: gpt2-mini's context of 256 tokens leaves 240 after the benchmark's 16-token prompt"),
                                (["--shape", "llama-mini", "--generate-tokens", "250"], "--generate-tokens 250: llama-mini's context of 256 tokens leaves 240"),
                                (["--lora-rank", "4", "--against-full", "--generate-tokens", "8"], "--recompute or --generate-tokens above 0: it times training steps only"),
                                (["--lora-rank", "4096"], "LoRA rank 4096 is more than attn.c_attn's 384 input features"),
                                (["--zero", "-1"], "--zero must be 0, 1 or 2, got -1"),
                                (["--batch-size", "100000", "--generate-tokens", "0"], "out of memory: bench's step of 100000 sequences × 256 tokens per rank on gpt2-mini needs about")] {
            let r = CLI.sftDist(["bench"] + flags, seconds: 60)
            XCTAssertNotEqual(r.status, 0, r.all)
            XCTAssertTrue(r.stderr.contains(needle), r.stderr)
            XCTAssertEqual(CLI.occurrences(of: "error", in: r.stderr), 1, r.stderr)
        }
    }
}
