import Foundation
import Models

/// Where a checkpoint's files really are. A manifest names paths relative to the checkpoint
/// directory, but the directory may hold symlinks (to `/etc`, to `/dev/zero`) or FIFOs put
/// there by anyone who could write it. Every path is resolved with symlinks followed and must
/// land on a regular file inside the (resolved) checkpoint directory before anything opens
/// it: nothing outside the checkpoint is read, hashed or described in a message, and a FIFO
/// or device can neither block the read nor feed it forever.
struct CheckpointPaths {
    /// The checkpoint directory as given (for messages) and as resolved (for the check).
    let directory: String
    let resolvedDirectory: String

    /// nil when `directory` does not resolve (it does not exist).
    init?(directory: String) {
        guard let real = realpath(directory, nil) else { return nil }
        defer { free(real) }
        self.directory = directory
        resolvedDirectory = String(cString: real)
    }

    /// `directory/relative` as shown in messages, with an absurd path cut short.
    func shown(_ relative: String) -> String { directory + "/" + MessageText.oneLine(relative, max: 100) }

    /// The resolved path of a regular file inside the checkpoint and its size from stat;
    /// nil when nothing is there.
    func regularFile(_ relative: String) throws -> (path: String, size: Int)? {
        let full = directory + "/" + relative
        guard let real = realpath(full, nil) else {
            let code = errno
            if code == ENOENT { return nil }
            throw CheckpointError("\(shown(relative)): cannot resolve (\(String(cString: strerror(code))))")
        }
        let resolved = String(cString: real)
        free(real)
        let root = resolvedDirectory == "/" ? "/" : resolvedDirectory + "/"
        guard resolved.hasPrefix(root) || resolved == resolvedDirectory else {
            throw CheckpointError("\(shown(relative)): leaves the checkpoint directory (through a symlink); refused unread")
        }
        var st = stat()
        guard stat(resolved, &st) == 0 else {
            throw CheckpointError("\(shown(relative)): cannot read (\(String(cString: strerror(errno))))")
        }
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw CheckpointError("\(shown(relative)): not a regular file (a directory, FIFO or device); refused unread")
        }
        return (resolved, Int(st.st_size))
    }
}
