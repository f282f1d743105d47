import Foundation
import TensorCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Input files that come from users (config.json, tokenizer files, JSONL data), read so that no
/// path can make us hang or read without end: the file is opened with `O_NONBLOCK` (opening a
/// FIFO for reading otherwise blocks until some writer appears), anything but a regular file
/// after following symlinks is refused (`/dev/zero`, a FIFO, a directory), and never more than
/// `limit` bytes are read. Errors are one line naming the path.
public enum InputFile {
    public struct Problem: Error, CustomStringConvertible, Equatable, Sendable {
        public let path: String
        public let problem: String
        /// Whether the file does not exist (callers with optional files treat that as absent).
        public let isMissing: Bool
        public var description: String { "\(path): \(problem)" }
    }

    /// An open regular file: its descriptor (close it with `close`) and its size at open.
    public struct Opened {
        public let fd: Int32
        public let size: Int
    }

    /// Opens `path` for reading and checks that it is a regular file of at most `limit` bytes;
    /// `what` names the kind of file in the size message ("a JSONL file").
    public static func open(_ path: String, limit: Int, what: String) throws -> Opened {
        let fd = posixOpen(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        if fd < 0 {
            let code = errno
            if code == ENOENT { throw Problem(path: path, problem: "no such file", isMissing: true) }
            throw Problem(path: path, problem: "cannot open (\(String(cString: strerror(code))))", isMissing: false)
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let code = errno
            close(fd)
            throw Problem(path: path, problem: "cannot stat (\(String(cString: strerror(code))))", isMissing: false)
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw Problem(path: path, problem: "not a regular file (\(kind(st.st_mode)))", isMissing: false)
        }
        let size = Int(st.st_size)
        if size > limit {
            close(fd)
            throw Problem(path: path, problem: "is \(CheckedAllocation.describe(bytes: size)), more than the \(CheckedAllocation.describe(bytes: limit)) allowed for \(what)", isMissing: false)
        }
        // Regular files never block; clearing O_NONBLOCK keeps later reads plain.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return Opened(fd: fd, size: size)
    }

    /// The whole of a regular file of at most `limit` bytes.
    public static func read(_ path: String, limit: Int, what: String) throws -> Data {
        let f = try open(path, limit: limit, what: what)
        defer { close(f.fd) }
        return try readAll(f.fd, limit: limit, name: path, what: what)
    }

    /// Like `read`, but nil when the file does not exist (optional companion files).
    public static func readIfPresent(_ path: String, limit: Int, what: String) throws -> Data? {
        do { return try read(path, limit: limit, what: what) } catch let p as Problem where p.isMissing { return nil }
    }

    /// Everything readable from `fd` (a pipe or terminal too), failing as soon as more than
    /// `limit` bytes arrive: an endless stream (`< /dev/zero`) ends in an error, not in memory
    /// exhaustion.
    public static func readAll(_ fd: Int32, limit: Int, name: String, what: String) throws -> Data {
        var out = Data()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { posixRead(fd, $0) }
            if n < 0 {
                let code = errno
                if code == EINTR { continue }
                throw Problem(path: name, problem: "cannot read (\(String(cString: strerror(code))))", isMissing: false)
            }
            if n == 0 { return out }
            if out.count + n > limit {
                throw Problem(path: name, problem: "more than the \(CheckedAllocation.describe(bytes: limit)) allowed for \(what)", isMissing: false)
            }
            out.append(contentsOf: chunk[0..<n])
        }
    }

    static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: return "a directory"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFIFO: return "a FIFO"
        case S_IFSOCK: return "a socket"
        default: return "not a file"
        }
    }
}

/// The POSIX calls under other names: inside `InputFile` its own `open`/`read` would shadow them.
private func posixOpen(_ path: String, _ flags: Int32) -> Int32 { open(path, flags) }
private func posixRead(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) -> Int { read(fd, buffer.baseAddress, buffer.count) }
