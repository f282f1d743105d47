import Foundation

/// How much memory this process can still expect to get, so a model too large for the machine
/// is refused with a message before anything is allocated (an allocation that the kernel
/// overcommits fails much later, as the OOM killer, on one rank).
public enum MemoryBudget {
    /// The smaller of: memory the kernel reports as available (`MemAvailable` + `SwapFree` in
    /// /proc/meminfo, which counts reclaimable caches), and what is left of an address-space
    /// limit (`ulimit -v`) after what is already mapped. nil when neither is known.
    public static func availableBytes() -> Int? {
        [physicalBytes(), addressSpaceBytes()].compactMap { $0 }.min()
    }

    /// Memory the kernel reports as available (`MemAvailable` + `SwapFree`).
    public static func physicalBytes() -> Int? {
        guard let meminfo = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return nil }
        let kib = { (key: String) -> Int? in
            meminfo.split(separator: "\n").first { $0.hasPrefix(key + ":") }
                .flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") }
        }
        return kib("MemAvailable").map { ($0 + (kib("SwapFree") ?? 0)) * 1024 }
    }

    /// What is left of an address-space limit (`ulimit -v`) after what is already mapped: mapped
    /// memory counts there even untouched (a model's lazily mapped gradients).
    public static func addressSpaceBytes() -> Int? {
        var rl = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &rl) == 0, rl.rlim_cur < rlim_t(Int.max) else { return nil }
        return max(0, Int(rl.rlim_cur) - mappedBytes())
    }

    /// The process's virtual size now (/proc/self/statm, first field, in pages).
    private static func mappedBytes() -> Int {
        guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
              let pages = statm.split(separator: " ").first.flatMap({ Int($0) }) else { return 0 }
        return pages * sysconf(Int32(_SC_PAGESIZE))
    }
}
