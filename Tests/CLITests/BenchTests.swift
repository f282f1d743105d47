import Foundation
import XCTest

/// `sft-dist bench --json` under mpirun: the fields scripts/bench reads are there and
/// consistent with one another. Timings are only checked for their structure (the
/// allreduce's own cost is part of the time after backward plus the time in backward;
/// speed targets are the benchmark's business, never a test's).
final class BenchTests: XCTestCase {
    func testBenchJSONAtTwoRanks() throws {
        let r = CLI.mpirun(2, ["bench", "--threads", "1", "--steps", "2", "--warmup", "0",
                               "--generate-tokens", "0", "--json", "--quiet"], seconds: 240)
        XCTAssertEqual(r.status, 0, r.all)
        let line = try XCTUnwrap(r.stdout.split(separator: "\n").last, r.all)
        let j = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], String(line))
        func num(_ k: String) throws -> Double { try XCTUnwrap(j[k] as? Double ?? (j[k] as? Int).map(Double.init), "\(k) in \(line)") }
        XCTAssertEqual(try num("ranks"), 2)
        XCTAssertEqual(try num("parameters"), 13_891_584)
        XCTAssertEqual(try num("steps"), 2)
        for k in ["tokens_per_s", "model_flops", "sgemm_ceiling_flops", "sgemm_before_flops", "sgemm_after_flops", "median_step_s",
                  "peak_rss_bytes", "need_bytes"] {
            XCTAssertGreaterThan(try num(k), 0, k)
        }
        let sync = try num("grad_sync_s"), inBackward = try num("grad_sync_in_backward_s")
        let wait = try num("rank_wait_s"), afterMax = try num("grad_sync_after_backward_max_s")
        XCTAssertGreaterThan(sync, 0)          // two ranks really summed gradients
        XCTAssertGreaterThanOrEqual(wait, 0)
        XCTAssertGreaterThanOrEqual(sync, inBackward)
        XCTAssertEqual(try num("grad_sync_fraction"), sync / (try num("median_step_s")), accuracy: 1e-4)
        // Median over 2 steps is their mean, so per-step `own + wait ≤ inBackward + afterMax` holds on average.
        // The JSON prints 6 significant digits (%.6g): each of the four values is off by up to
        // 5e-6 of itself, so the slack is relative (an absolute 1e-6 failed on 1.28951 vs 1.289506).
        XCTAssertLessThanOrEqual(sync + wait, inBackward + afterMax + 1e-5 * (sync + wait + inBackward + afterMax) + 1e-9)
        XCTAssertEqual(try num("ceiling_ratio"), (try num("model_flops")) / (try num("sgemm_ceiling_flops")), accuracy: 1e-4)
        XCTAssertEqual(try num("sgemm_ceiling_flops"), max(try num("sgemm_before_flops"), try num("sgemm_after_flops")), accuracy: 1)
        XCTAssertTrue(try num("first_loss").isFinite)
        // Rank 0's CPU time is spent on its half of the 8×256 batch (it divided all 2,048 tokens).
        XCTAssertEqual(try num("tokens_per_cpu_s"), 1024 / (try num("median_step_cpu_s")), accuracy: 1e-3 * (try num("tokens_per_cpu_s")))
    }

    /// SFT_DIST_GEMM_PROFILE's table holds the step's products only: the benchmark's 1024³
    /// ceiling probes were in it (35 % of a short run's "gemm total", skewing every share).
    func testGEMMProfileLeavesOutTheCeilingProbes() throws {
        let r = try BackgroundJob.sftDist(["bench", "--threads", "1", "--steps", "1", "--warmup", "0", "--generate-tokens", "0",
                                           "--seq-len", "64", "--quiet"], seconds: 120, environment: ["SFT_DIST_GEMM_PROFILE": "1"]).wait().result
        XCTAssertEqual(r.status, 0, r.all)
        XCTAssertTrue(r.stderr.contains("GEMM profile (thread CPU time)"), r.stderr)
        XCTAssertTrue(r.stderr.contains("gemm 512 "), r.stderr)   // the step's products (8 × 64 rows) are there
        XCTAssertFalse(r.stderr.contains("gemm 1024 1024 1024"), r.stderr)
    }

    /// --json prints one line, with --selection too (it printed a second JSON line, and
    /// scripts/bench reads the last line only).
    func testSelectionJoinsTheOneJSONLine() throws {
        let r = CLI.sftDist(["bench", "--threads", "1", "--steps", "1", "--warmup", "0", "--generate-tokens", "0",
                             "--selection", "random", "--json", "--quiet"], seconds: 240)
        XCTAssertEqual(r.status, 0, r.all)
        let lines = r.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, r.stdout)
        let j = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any], r.stdout)
        XCTAssertEqual(j["selection"] as? String, "random")
        XCTAssertNotNil(j["selection_pass_s"])
        XCTAssertNotNil(j["tokens_per_s"])
    }
}
