import Foundation

/// Which OpenBLAS kernel the process runs with. OpenBLAS (built with DYNAMIC_ARCH, as Debian
/// ships it) picks its kernels by CPU model when the library loads; a CPU newer than the
/// library falls back to an old kernel. Debian 12's OpenBLAS 0.3.21 on an Intel Xeon of family
/// 6 model 207 (Emerald Rapids, AVX-512) picks "Prescott" (SSE3): `sft-dist bench` measured an
/// SGEMM rate of 65 GFLOP/s at 2 threads there, against 164 GFLOP/s at 1 thread with
/// OPENBLAS_CORETYPE=SkylakeX (README, "Performance"). The CPU's features, not its model
/// number, say which kernel it can run, so a fallback below AVX2 on a CPU that has AVX2 is
/// replaced before any work starts (`sft-dist`'s Runtime restarts the process with
/// OPENBLAS_CORETYPE set: OpenBLAS reads it only when it loads). A kernel OpenBLAS chose for a
/// CPU it knows, and any OPENBLAS_CORETYPE the user set, are left alone.
public enum BLASKernel {
    /// `openblas_get_corename()` names (lower-cased) of the kernels built for AVX2 + FMA or
    /// AVX-512: a CPU that got one of these was recognised.
    static let vectorKernels: Set<String> = ["haswell", "zen", "skylakex", "cooperlake", "sapphirerapids", "excavator"]

    /// The environment variable holding the kernel OpenBLAS picked before sft-dist replaced it
    /// (set for the restarted process, so its log can say so).
    public static let replacedVariable = "SFT_DIST_OPENBLAS_REPLACED_CORE"

    /// The OPENBLAS_CORETYPE to run with instead of OpenBLAS's choice `core`, given the CPU's
    /// feature flags (/proc/cpuinfo's names), or nil to keep `core`: SkylakeX (OpenBLAS's
    /// AVX-512 SGEMM kernel) when the CPU has AVX-512 F/CD/BW/DQ/VL, Haswell when it has
    /// AVX2 and FMA, only when `core` is not already an AVX2 or AVX-512 kernel.
    public static func replacement(core: String, cpuFlags: Set<String>) -> String? {
        guard !vectorKernels.contains(core.lowercased()) else { return nil }
        if ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(cpuFlags.contains) { return "SkylakeX" }
        if ["avx2", "fma"].allSatisfy(cpuFlags.contains) { return "Haswell" }
        return nil
    }

    /// The first `flags` line of `cpuinfo` (the features the kernel enabled, so AVX-512 is
    /// absent where the OS does not save its registers); empty when there is none.
    public static func cpuFlags(cpuinfo: String = "/proc/cpuinfo") -> Set<String> {
        guard let text = try? String(contentsOfFile: cpuinfo, encoding: .utf8) else { return [] }
        for line in text.split(separator: "\n") where line.hasPrefix("flags") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
        }
        return []
    }

    /// What the restart did, read once at start-up (`adoptRestart`): the kernel OpenBLAS had
    /// picked and the OPENBLAS_CORETYPE set instead; nil when nothing was replaced.
    nonisolated(unsafe) public private(set) static var replaced: (core: String, coreType: String)?

    /// In the restarted process, before anything else: records what was replaced and removes
    /// both variables from the environment, which OpenBLAS has read as it loaded, so programs
    /// the run starts (a scorer with its own OpenBLAS) see the environment the user gave.
    public static func adoptRestart() {
        let env = ProcessInfo.processInfo.environment
        guard let old = env[replacedVariable], !old.isEmpty else { return }
        replaced = (old, env["OPENBLAS_CORETYPE"] ?? "")
        unsetenv(replacedVariable)
        unsetenv("OPENBLAS_CORETYPE")
    }

    /// The kernel OpenBLAS picked before this process was restarted with a better one, if it was.
    public static var replacedCore: String? { replaced?.core }

    /// One line for the run's log when the kernel is below AVX2 on a CPU that has AVX2, else
    /// nil: what OpenBLAS picked, what runs instead (or, where the process could not be
    /// restarted, what to set), and how to choose.
    public static var replacementNote: String? {
        let now = BLAS.coreName
        let library = BLAS.config.split(separator: " ").prefix(2).joined(separator: " ")
        guard let (old, coreType) = replaced else {
            guard ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil,
                  let better = replacement(core: now, cpuFlags: cpuFlags()) else { return nil }
            return "note: \(library) picked its \(now) kernel (below AVX2) for this CPU, which it does not know: matrix products run at a fraction of the CPU's rate; set OPENBLAS_CORETYPE=\(better) to use its \(better) kernel"
        }
        if now.lowercased() == old.lowercased() {
            return "note: \(library) picked its \(old) kernel (below AVX2) for this CPU and ignored OPENBLAS_CORETYPE=\(coreType): matrix products run at a fraction of the CPU's rate (an OpenBLAS built without DYNAMIC_ARCH?)"
        }
        return "note: \(library) picked its \(old) kernel (below AVX2) for this CPU, which it does not know; running with OPENBLAS_CORETYPE=\(coreType) (kernel \(now)) instead — set OPENBLAS_CORETYPE to choose"
    }

    /// `bench`'s OPENBLAS_CORETYPE row: the setting, who set it, and the kernel running.
    public static func reportRow(coreType: String, blasCore: String) -> String {
        "\(coreType)\(replacedCore.map { " (set by sft-dist: OpenBLAS picked \($0))" } ?? "") (OpenBLAS kernel: \(blasCore))"
    }

    /// The OPENBLAS_CORETYPE the process runs with, as `bench` reports it: the user's, the one
    /// sft-dist set, or "(unset)".
    public static var coreTypeSetting: String {
        replaced?.coreType ?? ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "(unset)"
    }
}
