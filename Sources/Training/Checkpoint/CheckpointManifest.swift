import Foundation
import Models

/// `manifest.json`: every file of a checkpoint with its size and XXH64, plus a checksum of
/// the list itself. Written last, inside the temporary directory, before the rename that
/// publishes the checkpoint; `--resume` verifies all of it before loading anything, so a
/// truncated, bit-flipped or hand-edited checkpoint is refused with the file it concerns.
struct CheckpointManifest: Codable, Equatable {
    struct File: Codable, Equatable {
        var path: String      // relative to the checkpoint directory
        var size: Int
        var xxh64: String     // 16 hex digits
    }

    static let fileName = "manifest.json"
    static let formatName = "sft-dist-checkpoint"
    static let currentVersion = 1

    var format = formatName
    var version = currentVersion
    var step: Int
    var files: [File]
    /// XXH64 of `listing` (below): catches an edit of the manifest that is still valid JSON.
    var checksum: String

    /// The bytes the manifest's own checksum covers: one line per file, in order.
    static func listing(step: Int, files: [File]) -> String {
        "step \(step)\n" + files.map { "\($0.path) \($0.size) \($0.xxh64)\n" }.joined()
    }

    /// Hashes every regular file under `dir` (except the manifest) into a manifest.
    static func make(directory dir: String, step: Int) throws -> CheckpointManifest {
        let fm = FileManager.default
        var files: [File] = []
        for rel in (try? fm.subpathsOfDirectory(atPath: dir))?.sorted() ?? [] where rel != fileName {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: dir + "/" + rel, isDirectory: &isDir), !isDir.boolValue else { continue }
            let (h, size) = try XXHash64.hashFile(dir + "/" + rel)
            files.append(File(path: rel, size: size, xxh64: XXHash64.hex(h)))
        }
        let sum = XXHash64.hex(XXHash64.hash(Array(listing(step: step, files: files).utf8)))
        return CheckpointManifest(step: step, files: files, checksum: sum)
    }

    var encoded: [UInt8] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array((try? enc.encode(self)) ?? Data()) + [0x0A]
    }

    /// A real manifest lists a few dozen files; a larger one is refused unread.
    static let maxBytes = 16 << 20

    /// Reads and checks `dir/manifest.json`, then every file it lists (see `CheckpointPaths`:
    /// nothing outside the checkpoint, nothing but regular files). Errors name the file.
    static func verify(directory dir: String) throws -> CheckpointManifest {
        let path = dir + "/" + fileName
        let missing = CheckpointError("\(path): missing (not a checkpoint directory, or one whose save never finished)")
        guard let paths = CheckpointPaths(directory: dir), let file = try paths.regularFile(fileName) else { throw missing }
        guard file.size <= maxBytes else {
            throw CheckpointError("\(path): \(file.size) bytes, larger than any manifest (\(maxBytes)); refused unread")
        }
        guard let data = FileManager.default.contents(atPath: file.path) else { throw CheckpointError("\(path): cannot read") }
        let m = try parse(data, path: path)
        // Every listed path resolved, then the rest of the tree checked, before anything is read.
        let files = try m.files.map { f in
            guard let file = try paths.regularFile(f.path) else { throw CheckpointError("\(paths.shown(f.path)): missing from the checkpoint") }
            return file
        }
        try paths.checkTree()
        for (f, file) in zip(m.files, files) {
            // The size first: a replaced file is refused without reading it.
            var size = file.size
            if size == f.size {
                let (h, hashed) = try XXHash64.hashFile(file.path)
                size = hashed
                if size == f.size && XXHash64.hex(h) != f.xxh64 {
                    throw CheckpointError("\(paths.shown(f.path)): checksum \(XXHash64.hex(h)) does not match the manifest's \(MessageText.oneLine(f.xxh64, max: 20)) (the checkpoint is corrupt)")
                }
            }
            guard size == f.size else {
                throw CheckpointError("\(paths.shown(f.path)): \(size) bytes but the manifest says \(f.size) (truncated or replaced; the checkpoint is corrupt)")
            }
        }
        return m
    }

    /// The manifest's own checks, on its bytes: the JSON sft-dist writes, this format and
    /// version, its checksum, and paths that stay inside the directory as written.
    static func parse(_ data: Data, path: String) throws -> CheckpointManifest {
        // A manifest nests three levels; checked first because JSONDecoder traps on some
        // text nested past its own limit (see JSONNesting).
        guard JSONNesting.depth(data, limit: 16) <= 16 else {
            throw CheckpointError("\(path): corrupt manifest (nested more than 16 levels deep)")
        }
        let m: CheckpointManifest
        do { m = try JSONDecoder().decode(CheckpointManifest.self, from: data) } catch {
            throw CheckpointError("\(path): corrupt manifest (not the JSON sft-dist writes: \(describe(error)))")
        }
        guard m.format == formatName else {
            throw CheckpointError("\(path): not an sft-dist checkpoint manifest (format \(MessageText.quoted(m.format, max: 40)))")
        }
        guard m.version == currentVersion else {
            throw CheckpointError("\(path): checkpoint format version \(m.version); this sft-dist reads version \(currentVersion)")
        }
        let expected = XXHash64.hex(XXHash64.hash(Array(listing(step: m.step, files: m.files).utf8)))
        guard m.checksum == expected else {
            throw CheckpointError("\(path): corrupt manifest (its checksum \(MessageText.quoted(m.checksum, max: 20)) does not match its contents, \(expected))")
        }
        for f in m.files {
            if f.path.hasPrefix("/") || f.path.split(separator: "/").contains("..") {
                throw CheckpointError("\(path): corrupt manifest (file path \(MessageText.quoted(f.path, max: 60)) leaves the checkpoint)")
            }
            // Control characters could forge lines of the checksummed listing.
            if f.path.isEmpty || f.path.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
                throw CheckpointError("\(path): corrupt manifest (file path \(MessageText.quoted(f.path, max: 60)) is not a file name)")
            }
        }
        return m
    }

    static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): return "missing \"\(key.stringValue)\""
        case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c):
            return "wrong type at \"\(c.codingPath.map(\.stringValue).joined(separator: "."))\""
        case DecodingError.dataCorrupted(let c) where !c.codingPath.isEmpty:
            return "bad value at \"\(c.codingPath.map(\.stringValue).joined(separator: "."))\""
        case DecodingError.dataCorrupted: return "invalid JSON"
        default: return MessageText.oneLine("\(error)", max: 100)
        }
    }
}
