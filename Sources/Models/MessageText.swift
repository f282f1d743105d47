import Foundation

/// How things from outside the program appear inside a one-line error message: a file
/// error as the system's reason ("Permission denied", "Not a directory") rather than
/// Foundation's "NSCocoaErrorDomain error 512" or "The file doesn't exist.", and a value
/// quoted from user input or a program's output cut short, so no message runs past one line.
public enum MessageText {
    /// The POSIX reason of a file-system error (Foundation's wrappers carry it as the
    /// underlying error), prefixed by the file it concerns when that is not `path` (creating
    /// `out/data` fails, the message is about `out`); other errors as they describe
    /// themselves, on one line.
    public static func reason(_ error: Error, for path: String? = nil) -> String {
        let ns = error as NSError
        var reason: String? = nil
        if ns.domain == NSPOSIXErrorDomain {
            reason = String(cString: strerror(Int32(ns.code)))
        } else if let underlying = (ns.userInfo[NSUnderlyingErrorKey] as? Error).map({ $0 as NSError }),
                  underlying.domain == NSPOSIXErrorDomain {
            reason = String(cString: strerror(Int32(underlying.code)))
        } else if ns.domain == NSCocoaErrorDomain {
            switch ns.code {
            case NSFileNoSuchFileError, NSFileReadNoSuchFileError: reason = "No such file or directory"
            case NSFileWriteNoPermissionError, NSFileReadNoPermissionError: reason = "Permission denied"
            case NSFileWriteOutOfSpaceError: reason = "No space left on device"
            case NSFileWriteVolumeReadOnlyError: reason = "Read-only file system"
            case NSFileWriteFileExistsError: reason = "File exists"
            case NSFileWriteUnknownError: reason = "write failed"
            case NSFileReadUnknownError: reason = "read failed"
            default: reason = "file error \(ns.code)"
            }
        }
        guard let reason else { return oneLine("\(error)", max: 200) }
        if let file = (ns.userInfo[NSFilePathErrorKey] as? String) ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path, file != path {
            return oneLine(file, max: 120) + ": " + reason
        }
        return reason
    }

    /// `s` with line breaks shown as spaces and cut to about `max` characters (an ellipsis
    /// and the total length mark the cut).
    public static func oneLine(_ s: String, max: Int = 80) -> String {
        let flat = s.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ")
        guard flat.count > max else { return flat }
        return String(flat.prefix(max)) + "… (\(s.utf8.count) bytes)"
    }

    /// `oneLine` in double quotes with control characters escaped, for quoting a value.
    public static func quoted(_ s: String, max: Int = 80) -> String {
        let cut = s.count > max ? String(s.prefix(max)) : s
        // Swift's debugDescription escapes ' as \' — not how the user typed a shell command.
        let text = cut.debugDescription.replacingOccurrences(of: "\\'", with: "'")
        return text + (s.count > max ? "… (\(s.utf8.count) bytes)" : "")
    }
}

/// An output that could not be written (a model directory, a data file): the README's exit
/// code 6, where bad input is 1. Thrown by writers that may also be called next to reads
/// (`export` loads, then saves), so the caller can tell the two apart.
public struct OutputError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
