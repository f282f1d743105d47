import Foundation
import XCTest

/// A CPU newer than the OpenBLAS it runs with (Debian 12's 0.3.21 on an Emerald Rapids Xeon)
/// got OpenBLAS's SSE3 "Prescott" kernel, a quarter of the CPU's SGEMM rate: sft-dist now runs
/// with an AVX2 or AVX-512 kernel whenever the CPU has AVX2 and FMA, unless the user set
/// OPENBLAS_CORETYPE. On a machine OpenBLAS knows the first test checks the same outcome with
/// nothing replaced.
final class BLASKernelCLITests: XCTestCase {
    static let vectorKernels: Set<String> = ["haswell", "zen", "skylakex", "cooperlake", "sapphirerapids", "excavator"]

    static var cpuHasAVX2: Bool {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return false }
        let flags = Set(line.split(separator: " ").map(String.init))
        return flags.contains("avx2") && flags.contains("fma")
    }

    func bench(_ environment: [String]) throws -> [String: Any] {
        let r = CLI.run(["env"] + environment + [CLI.binary, "bench", "--threads", "1", "--steps", "1", "--warmup", "0",
                                                 "--generate-tokens", "0", "--seq-len", "32", "--json", "--quiet"], seconds: 240)
        XCTAssertEqual(r.status, 0, r.all)
        let line = try XCTUnwrap(r.stdout.split(separator: "\n").last, r.all)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], String(line))
    }

    func testUnsetCoreTypeRunsAVX2KernelWhereTheCPUHasIt() throws {
        try XCTSkipUnless(Self.cpuHasAVX2, "this CPU has no AVX2 + FMA")
        let j = try bench(["-u", "OPENBLAS_CORETYPE"])
        let core = try XCTUnwrap(j["openblas_core"] as? String)
        XCTAssertTrue(Self.vectorKernels.contains(core.lowercased()), "OpenBLAS kernel \(core) on a CPU with AVX2")
        if let replaced = j["openblas_replaced_core"] as? String {
            XCTAssertFalse(Self.vectorKernels.contains(replaced.lowercased()), replaced)
            XCTAssertEqual(j["openblas_coretype"] as? String, core)
        } else {
            XCTAssertTrue(j["openblas_replaced_core"] is NSNull)
            XCTAssertEqual(j["openblas_coretype"] as? String, "(unset)")
        }
    }

    func testCoreTypeTheUserSetIsKept() throws {
        let j = try bench(["OPENBLAS_CORETYPE=Prescott"])
        XCTAssertEqual(j["openblas_core"] as? String, "Prescott")
        XCTAssertEqual(j["openblas_coretype"] as? String, "Prescott")
        XCTAssertTrue(j["openblas_replaced_core"] is NSNull)
    }

    /// Under mpirun every rank restarts itself before MPI starts; the job runs and its log says
    /// so once. OPENBLAS_VERBOSE=2 makes OpenBLAS print "Core: NAME" as it loads, so each rank
    /// shows what OpenBLAS picked and, when it was replaced, what it loaded with after the restart.
    func testRanksRestartBeforeMPIAndTheLogSaysItOnce() throws {
        let out = CLI.tempDir("blas-kernel")
        let r = CLI.run(["env", "-u", "OPENBLAS_CORETYPE", "mpirun"] + CLI.mpirunFlags + ["-x", "OPENBLAS_VERBOSE=2"]
                        + ["-n", "2", CLI.binary, "train", "--steps", "1", "--eval-examples", "0", "--out", out], seconds: 240)
        XCTAssertEqual(r.status, 0, r.all)
        let cores = r.stderr.split(separator: "\n").filter { $0.hasPrefix("Core: ") }.map { String($0.dropFirst(6)) }
        let picked = try XCTUnwrap(cores.first, r.all)
        let notes = r.all.components(separatedBy: "kernel (below AVX2)").count - 1
        if Self.cpuHasAVX2 && !Self.vectorKernels.contains(picked.lowercased()) {
            XCTAssertEqual(cores.count, 4, r.all)   // each rank: OpenBLAS's pick, then the replacement
            XCTAssertEqual(cores.filter { Self.vectorKernels.contains($0.lowercased()) }.count, 2, r.all)
            XCTAssertEqual(notes, 1, r.all)
            XCTAssertTrue(r.stdout.contains("picked its \(picked) kernel (below AVX2) for this CPU, which it does not know; running with OPENBLAS_CORETYPE="), r.all)
        } else {
            XCTAssertEqual(cores, [picked, picked], r.all)
            XCTAssertEqual(notes, 0, r.all)
        }
    }

    /// What the restart set is not passed on: a scorer the run starts (with an OpenBLAS of its
    /// own, numpy's) sees the environment the user gave.
    func testScorersDoNotInheritTheRestartsVariables() throws {
        let dir = CLI.tempDir("blas-env")
        try "{\"prompt\": \"add 1 2 =\", \"completion\": \" 3\"}\n".write(toFile: dir + "/d.jsonl", atomically: true, encoding: .utf8)
        try "#!/bin/sh\nenv > \(dir)/env.txt\nwhile read -r l; do echo 1; done\n".write(toFile: dir + "/scorer.sh", atomically: true, encoding: .utf8)
        chmod(dir + "/scorer.sh", 0o755)
        let r = CLI.run(["env", "-u", "OPENBLAS_CORETYPE", CLI.binary, "eval", "--model", "tiny", "--data", dir + "/d.jsonl", "--examples", "1",
                         "--scorer", "command", "--scorer-cmd", dir + "/scorer.sh"], seconds: 60)
        XCTAssertEqual(r.status, 0, r.all)
        let env = try String(contentsOfFile: dir + "/env.txt", encoding: .utf8)
        XCTAssertFalse(env.contains("OPENBLAS_CORETYPE="), env)
        XCTAssertFalse(env.contains("SFT_DIST_OPENBLAS"), env)
    }

    /// Started through the dynamic loader (`ld-linux-x86-64.so.2 sft-dist …`) /proc/self/exe is
    /// the loader: no restart (it ran the loader with `train` as the program, exit 127); where
    /// the kernel is below AVX2, the log says what to set.
    func testStartedThroughTheLoaderRunsAndSaysWhatToSet() throws {
        let loader = "/lib64/ld-linux-x86-64.so.2"
        guard FileManager.default.isExecutableFile(atPath: loader) else { throw XCTSkip("no \(loader)") }
        let out = CLI.tempDir("blas-loader")
        let r = CLI.run(["env", "-u", "OPENBLAS_CORETYPE", "OPENBLAS_VERBOSE=2", loader, CLI.binary, "train", "--model", "tiny", "--steps", "1",
                         "--eval-examples", "0", "--out", out], seconds: 60)
        XCTAssertEqual(r.status, 0, r.all)
        let picked = r.stderr.split(separator: "\n").first { $0.hasPrefix("Core: ") }.map { String($0.dropFirst(6)) } ?? ""
        if Self.cpuHasAVX2 && !Self.vectorKernels.contains(picked.lowercased()) {
            XCTAssertTrue(r.stdout.contains("kernel (below AVX2) for this CPU, which it does not know: matrix products run at a fraction of the CPU's rate; set OPENBLAS_CORETYPE="), r.all)
        }
    }
}
