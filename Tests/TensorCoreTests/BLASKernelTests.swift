import XCTest
@testable import TensorCore

/// `BLASKernel.replacement`: which OpenBLAS kernel replaces a fallback, from the CPU's flags.
/// The vectors are the cases seen: Debian 12's OpenBLAS 0.3.21 gives "Prescott" on an
/// Emerald Rapids Xeon (family 6 model 207, AVX-512), and kernels it chose for CPUs it knows.
final class BLASKernelTests: XCTestCase {
    let avx512: Set<String> = ["sse3", "avx", "avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512_bf16"]
    let avx2: Set<String> = ["sse3", "avx", "avx2", "fma"]

    func testFallbackBelowAVX2IsReplacedByWhatTheCPUHas() {
        XCTAssertEqual(BLASKernel.replacement(core: "Prescott", cpuFlags: avx512), "SkylakeX")
        XCTAssertEqual(BLASKernel.replacement(core: "Nehalem", cpuFlags: avx512), "SkylakeX")
        XCTAssertEqual(BLASKernel.replacement(core: "Sandybridge", cpuFlags: avx2), "Haswell")
        XCTAssertEqual(BLASKernel.replacement(core: "Prescott", cpuFlags: avx2), "Haswell")
        // AVX-512 F alone (no BW/DQ/VL, as on Xeon Phi) is not what SkylakeX's kernel needs.
        XCTAssertEqual(BLASKernel.replacement(core: "Prescott", cpuFlags: avx2.union(["avx512f", "avx512cd"])), "Haswell")
    }

    func testKernelsForKnownCPUsAndCPUsWithoutAVX2AreKept() {
        for core in ["Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids", "Excavator"] {
            XCTAssertNil(BLASKernel.replacement(core: core, cpuFlags: avx512), core)
        }
        XCTAssertNil(BLASKernel.replacement(core: "Sandybridge", cpuFlags: ["sse3", "avx"]))
        XCTAssertNil(BLASKernel.replacement(core: "Prescott", cpuFlags: ["sse3", "avx2"]))  // no FMA
        XCTAssertNil(BLASKernel.replacement(core: "Prescott", cpuFlags: []))                 // flags unreadable
    }

    func testFlagsAreTheFirstFlagsLineOfCpuinfo() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cpuinfo-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "processor\t: 0\nflags\t\t: fpu sse3 avx2 fma\nbugs\t\t: spectre_v1\n\nprocessor\t: 1\nflags\t\t: fpu avx512f\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(BLASKernel.cpuFlags(cpuinfo: path), ["fpu", "sse3", "avx2", "fma"])
        XCTAssertEqual(BLASKernel.cpuFlags(cpuinfo: path + ".missing"), [])
    }
}
