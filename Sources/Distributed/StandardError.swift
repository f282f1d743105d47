#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Every line sft-dist writes to stderr goes through here, never through
/// `FileHandle.standardError.write`: that traps when stderr cannot be written (a log on a disk
/// that filled, `2>/dev/full`), so a run that should have ended with its own exit code (6 for a
/// full disk, 75 after SIGUSR1's checkpoint) died of SIGILL, exit 132, instead. A message that
/// cannot be written is lost; the exit code still says what happened. (A pipe whose reader is
/// gone raises SIGPIPE, which ends the process as it ends any program writing there.)
public enum StandardError {
    public static func write(_ text: String) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                #if canImport(Glibc)
                Glibc.write(2, raw.baseAddress! + offset, raw.count - offset)
                #else
                Darwin.write(2, raw.baseAddress! + offset, raw.count - offset)
                #endif
            }
            if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { return }
        }
    }
}
