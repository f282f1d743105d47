import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A checkpoint problem, printed as one line (`path: what is wrong`).
public struct CheckpointError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// The POSIX calls that make a directory of files durable: write, fsync every file, fsync the
/// directory, rename. `rename(2)` of a directory is atomic, and once the parent directory is
/// fsynced the new name survives a crash or power loss; before that, a reader sees the old
/// state. This is what lets a kill at any moment leave either the old checkpoint or the new
/// one, never a torn one.
enum DurableFiles {
    static func errnoText() -> String { String(cString: strerror(errno)) }

    /// Writes `bytes` to `path` and fsyncs it (the file is new, inside a temporary directory,
    /// so it needs no atomic replace of its own).
    static func write(_ bytes: [UInt8], to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CheckpointError("\(path): cannot create (\(errnoText()))") }
        defer { close(fd) }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                throw CheckpointError("\(path): write failed (\(errnoText()))")
            }
            done += n
        }
        guard fsync(fd) == 0 else { throw CheckpointError("\(path): fsync failed (\(errnoText()))") }
    }

    /// fsync an existing file or directory (files written by other code, e.g. config.json).
    static func sync(_ path: String, directory: Bool = false) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0))
        guard fd >= 0 else { throw CheckpointError("\(path): cannot open to fsync (\(errnoText()))") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw CheckpointError("\(path): fsync failed (\(errnoText()))") }
    }

    /// fsync every regular file under `dir` and every directory, deepest first.
    static func syncTree(_ dir: String) throws {
        let fm = FileManager.default
        for name in (try? fm.subpathsOfDirectory(atPath: dir))?.sorted(by: >) ?? [] {
            var isDir: ObjCBool = false
            let path = dir + "/" + name
            guard fm.fileExists(atPath: path, isDirectory: &isDir) else { continue }
            try sync(path, directory: isDir.boolValue)
        }
        try sync(dir, directory: true)
    }

    static func rename(_ from: String, _ to: String) throws {
        guard Foundation.rename(from, to) == 0 else {
            throw CheckpointError("cannot rename \(from) to \(to) (\(errnoText()))")
        }
    }

    /// Removes a directory so that no partial copy of it is ever visible under its name: it
    /// is first renamed to a hidden temporary name, then deleted.
    static func removeDirectory(_ path: String, parent: String) throws {
        let doomed = parent + "/.tmp-delete-\(getpid())-" + (path as NSString).lastPathComponent
        try rename(path, doomed)
        try? sync(parent, directory: true)
        try FileManager.default.removeItem(atPath: doomed)
    }
}
