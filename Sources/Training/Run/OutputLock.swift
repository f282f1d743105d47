import Foundation
import Models

/// One run per output directory. Two runs given the same `--out` wrote into each other's
/// metrics.jsonl and checkpoints, and one died with a rename error mid-save. Rank 0 holds an
/// exclusive `flock` on `OUT/.sft-dist.lock` (its pid written inside) for as long as it runs;
/// the kernel releases it when the process ends, however it ends, so a killed run never
/// leaves the directory locked.
enum OutputLock {
    nonisolated(unsafe) private static var held: Int32 = -1

    /// nil once this process holds the lock (creating `out` if needed), else one line naming
    /// the run that holds it.
    static func acquire(_ out: String) -> String? {
        if held >= 0 { return nil }
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: out, isDirectory: &isDir), !isDir.boolValue {
            return "\(out): is a file, not a directory; give --out a directory (new or a previous run's)"
        }
        do { try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true) } catch {
            return "\(out): cannot create the output directory (\(MessageText.reason(error, for: out)))"
        }
        let path = out + "/.sft-dist.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return "\(path): cannot open (\(String(cString: strerror(errno))))" }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            return "\(out): another sft-dist run\(holder.isEmpty ? "" : " (pid \(holder))") is writing here; wait for it to end, or give another --out"
        }
        _ = ftruncate(fd, 0)
        let pid = Array("\(getpid())\n".utf8)
        _ = pid.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        held = fd
        return nil
    }
}
