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
        guard inside(resolved) else {
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

    /// Every entry under the checkpoint, walked without following symlinks: a symlink must
    /// not lead outside, and nothing may be a FIFO, device or socket. Whatever later reads the
    /// checkpoint by path — the model loader opens files a manifest need not list, such as a
    /// chat template — then stays inside it and cannot block. A dangling symlink is left to
    /// fail as a missing file.
    func checkTree(maxEntries: Int = 100_000) throws {
        var pending = [""], seen = 0
        while let relative = pending.popLast() {
            let dir = relative.isEmpty ? directory : directory + "/" + relative
            let names: [String]
            do { names = try FileManager.default.contentsOfDirectory(atPath: dir) } catch {
                throw CheckpointError("\(dir): cannot list (\(MessageText.reason(error, for: dir)))")
            }
            for name in names {
                seen += 1
                guard seen <= maxEntries else {
                    throw CheckpointError("\(directory): more than \(maxEntries) entries; not a checkpoint sft-dist wrote")
                }
                let entry = relative.isEmpty ? name : relative + "/" + name
                var st = stat()
                guard lstat(directory + "/" + entry, &st) == 0 else { continue }  // removed meanwhile
                switch st.st_mode & S_IFMT {
                case S_IFDIR: pending.append(entry)
                case S_IFREG: break
                case S_IFLNK:
                    guard let real = realpath(directory + "/" + entry, nil) else { continue }
                    let resolved = String(cString: real)
                    free(real)
                    if !inside(resolved) {
                        throw CheckpointError("\(shown(entry)): a symlink that leaves the checkpoint directory; refused")
                    }
                default:
                    throw CheckpointError("\(shown(entry)): not a regular file (a FIFO, device or socket); refused")
                }
            }
        }
    }

    private func inside(_ resolved: String) -> Bool {
        resolved == resolvedDirectory || resolved.hasPrefix(resolvedDirectory == "/" ? "/" : resolvedDirectory + "/")
    }
}
