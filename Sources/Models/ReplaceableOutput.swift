import Foundation

/// Where a model or adapter directory may be written. `ModelDirectory.save` and
/// `AdapterDirectory.save` write `<dir>.tmp-<pid>` and rename it over `dir`, which deletes
/// whatever `dir` held — so `dir` must be absent or a model directory itself: one with
/// `config.json` or `adapter_config.json` and no subdirectories (a save never makes any).
/// `--out runs/a` for a training run's directory, or a directory holding the inputs, would
/// otherwise lose checkpoints, adapters and notes without a word.
public enum ReplaceableOutput {
    /// Throws unless `dir` may be replaced, and unless it is (or contains) one of `inputs`.
    /// `byCommand` (the `--out` of export, merge, merge-lora) adds `checkCommandOutput`'s rules.
    public static func check(_ dir: String, inputs: [String] = [], byCommand: Bool = false) throws {
        guard !dir.isEmpty else { throw EmptyPathError("--out: an empty path; give a directory") }
        if byCommand { try checkParent(dir) }
        let out = resolved(dir)
        for input in inputs {
            let i = resolved(input)
            if i == out { throw OutputError("\(dir): is the input \(input); write the result to another directory") }
            if i.hasPrefix(out + "/") { throw OutputError("\(dir): holds the input \(input); write the result to another directory") }
            // Written inside the input, the output made it a directory with a subdirectory, which
            // no later command took for a model.
            if out.hasPrefix(i + "/") { throw OutputError("\(dir): is inside the input \(input); write the result to another directory") }
        }
        // A link before its target's contents: one to /tmp was "holds TemporaryDirectory…/".
        var st = stat()
        if lstat(trimmed(dir), &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK {
            throw OutputError(byCommand ? "\(dir): is a symbolic link; give the directory itself" : replaceProblem(dir) ?? "\(dir): is a symbolic link")
        }
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: dir, isDirectory: &isDir) else { return }
        guard isDir.boolValue else { throw OutputError("\(dir): exists and is not a directory; not replacing it (choose another output or remove it)") }
        let entries = ((try? fm.contentsOfDirectory(atPath: dir)) ?? []).sorted()
        if entries.isEmpty { return }
        if let sub = entries.first(where: { var d: ObjCBool = false; return fm.fileExists(atPath: dir + "/" + $0, isDirectory: &d) && d.boolValue }) {
            throw OutputError("\(dir): exists and holds \(sub)/, so it is not a model directory; not replacing it (choose another output or remove it)")
        }
        guard entries.contains("config.json") || entries.contains("adapter_config.json") else {
            throw OutputError("\(dir): exists and is not a model directory (no config.json or adapter_config.json); not replacing it (choose another output or remove it)")
        }
        if byCommand { try checkCommandOutput(dir, entries: entries) }
    }

    /// A command's `--out` directory goes in an existing directory, as file outputs do (score,
    /// select, make-data): `export --out /nonexist/d` created the whole path.
    static func checkParent(_ dir: String) throws {
        let parent = URL(fileURLWithPath: trimmed(dir)).deletingLastPathComponent().path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDir), isDir.boolValue else {
            throw OutputError("\(dir): no such directory \(parent)")
        }
    }

    /// A command's `--out` — given by hand, unlike a run's own `OUT/model` — is replaced only
    /// when it holds nothing a save would not write again (and is not a symbolic link, which
    /// `check` refuses first): not a checkpoint's model (its manifest would no longer match),
    /// not a LoRA run's adapter (the commands write full weights), no file a save never writes
    /// (a user's README.md or notes).
    static func checkCommandOutput(_ dir: String, entries: [String]) throws {
        let parent = URL(fileURLWithPath: trimmed(dir)).standardizedFileURL.deletingLastPathComponent().path
        if ["manifest.json", "state.json"].allSatisfy({ FileManager.default.fileExists(atPath: parent + "/" + $0) }) {
            throw OutputError("\(dir): is part of the checkpoint \(parent), which would no longer resume; write the result to another directory")
        }
        if entries.contains("adapter_config.json") {
            throw OutputError("\(dir): holds a LoRA adapter (adapter_config.json); not replacing it with full weights (choose another output or remove it)")
        }
        if let other = entries.first(where: { !isSavedFile($0) }) {
            throw OutputError("\(dir): holds \(other), which a save does not write; not replacing it (choose another output or remove it)")
        }
    }

    /// Files a model or adapter save writes (and `merge` copies from a Hugging Face model).
    static func isSavedFile(_ name: String) -> Bool {
        name.hasSuffix(".safetensors") || [
            "config.json", "generation_config.json", "adapter_config.json", "model.safetensors.index.json",
            "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
            "sft_dist_tokenizer.json", "vocab.json", "merges.txt", "added_tokens.json"].contains(name)
    }

    /// Why a file output cannot go to `path`, nil when it can: an output file is written
    /// beside and renamed over its path, which would replace a device, a FIFO or a symbolic
    /// link with a regular file (`--out /dev/full` once did), so an existing `path` must be a
    /// regular file.
    public static func notAFileProblem(_ path: String) -> String? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }   // absent: created
        switch st.st_mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFLNK: return "is a symbolic link; give the path of the file itself"
        default: return "exists and is \(InputFile.kind(st.st_mode)), not a regular file; give a file path"
        }
    }

    /// The first output flag given as an empty path (`--out ""`): a malformed flag, exit 1 as
    /// `train --out ""`, where these commands exited 6 as if a file could not be written.
    public static func emptyPathProblem(_ outputs: [(String, String)]) -> String? {
        outputs.first { $0.1.isEmpty }.map { "\($0.0): an empty path; give a file" }
    }

    /// For file outputs (`score --out`, `select --out/--scores`): nil, or one line when an
    /// output is an input or another output (it was silently overwritten: the data lost), or
    /// its directory is missing or not writable (checked before anything is written, so no
    /// output is left half-made when a later one fails). Paths as (flag, path).
    /// `inputDirectories` (`--model`, `--adapter`, `--ref-model`): an output may not replace a
    /// model file in one (`score --out run/model/model.safetensors` replaced the weights it
    /// read); other files there (an earlier `score --out run/model/scores.jsonl`) may be.
    public static func fileOutputsProblem(outputs: [(String, String)], inputs: [(String, String)],
                                          inputDirectories: [(String, String)] = []) -> String? {
        // An empty path was ": cannot write" after the other outputs were written (callers
        // check it first, as bad input: exit 1).
        if let empty = emptyPathProblem(outputs) { return empty }
        for (i, (flag, path)) in outputs.enumerated() {
            if let problem = notAFileProblem(path) { return "\(flag) \(path): \(problem)" }
            let p = resolved(path)
            for (inFlag, input) in inputs where resolved(input) == p {
                return "\(flag) \(path): is the input \(inFlag) \(input); write the result to another file"
            }
            // A model file's name there, existing or not: a new generation_config.json was
            // planted in the model and copied on by merge and export.
            for (inFlag, dir) in inputDirectories where p.hasPrefix(resolved(dir) + "/")
                && isSavedFile(URL(fileURLWithPath: p).lastPathComponent) {
                return "\(flag) \(path): is a file of the input \(inFlag) \(dir); write the result to another file"
            }
            for (otherFlag, other) in outputs[..<i] where resolved(other) == p {
                return "\(flag) \(path): is also \(otherFlag); give each output its own file"
            }
            let parent = URL(fileURLWithPath: path).deletingLastPathComponent().path
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDir), isDir.boolValue else {
                return "\(flag) \(path): no such directory \(parent)"
            }
            if !FileManager.default.isWritableFile(atPath: parent) { return "\(flag) \(path): directory \(parent) is not writable" }
        }
        return nil
    }

    /// Writes a directory the way every model and adapter save does: `write` fills
    /// `<dir>.tmp-<pid>`, which is then renamed over `dir`, so a reader sees the old
    /// directory or the new one, never half of one. `dir` is checked first (`check`); a
    /// failure removes the copy and says it could not save `what`.
    public static func replace(_ dir: String, what: String, _ write: (_ tmp: String) throws -> Void) throws {
        let dir = trimmed(dir)
        try check(dir)
        removeStaleTemporaries(dir)
        let fm = FileManager.default
        let tmp = dir + ".tmp-\(getpid())"
        try? fm.removeItem(atPath: tmp)
        do {
            try fm.createDirectory(atPath: tmp, withIntermediateDirectories: true)
            try write(tmp)
            try swapIn(tmp, over: dir)
        } catch {
            try? fm.removeItem(atPath: tmp)
            throw OutputError("\(dir): cannot save \(what) (\(MessageText.reason(error, for: dir)))")
        }
    }

    /// Puts the finished `tmp` in `dir`'s place. An existing `dir` is exchanged with `tmp` in one
    /// atomic `renameat2(RENAME_EXCHANGE)` — a reader, or a kill at any moment, finds the whole
    /// old directory or the whole new one — and the old one, now at `tmp`, is removed. (It was
    /// deleted file by file before the rename: a kill part-way left a model without its
    /// tokenizer.) Where the file system cannot exchange, the old one is renamed aside first,
    /// `<tmp>-old`, and put back if the new one cannot take its place; only a kill between
    /// those two renames leaves `dir` absent, and the next save puts `<tmp>-old` back first
    /// (`removeStaleTemporaries`).
    static func swapIn(_ tmp: String, over dir: String) throws {
        let fm = FileManager.default
        var st = stat()
        guard lstat(dir, &st) == 0 else { return try fm.moveItem(atPath: tmp, toPath: dir) }
        if let exchange = renameExchange, exchange(AT_FDCWD, tmp, AT_FDCWD, dir, 2 /* RENAME_EXCHANGE */) == 0 {
            try? fm.removeItem(atPath: tmp)
            return
        }
        let aside = tmp + "-old"
        try fm.moveItem(atPath: dir, toPath: aside)
        do { try fm.moveItem(atPath: tmp, toPath: dir) } catch {
            try? fm.moveItem(atPath: aside, toPath: dir)
            throw error
        }
        try? fm.removeItem(atPath: aside)
    }

    /// glibc's `renameat2` (2.28 and later), which Swift's Glibc module does not declare.
    private typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
    nonisolated(unsafe) private static let renameExchange: RenameAt2? =
        dlsym(nil, "renameat2").map { unsafeBitCast($0, to: RenameAt2.self) }

    /// Why a save could not replace `dir` (or create it), checked before a run's first step so
    /// the answer does not come after its last: a symbolic link (dangling, or one the save
    /// would replace with a directory), a directory whose entries cannot be removed, a parent
    /// where the temporary copy cannot be made. nil when a save can go ahead.
    public static func replaceProblem(_ dir: String) -> String? {
        let dir = trimmed(dir)
        var st = stat()
        if lstat(dir, &st) == 0 {
            if (st.st_mode & S_IFMT) == S_IFLNK {
                return "\(dir): is a symbolic link, which the save would replace with a directory; remove it or choose another --out"
            }
            if (st.st_mode & S_IFMT) == S_IFDIR && access(dir, W_OK | X_OK) != 0 {
                return "\(dir): is not writable (\(String(cString: strerror(errno)))), so the save could not replace it; fix its permissions or choose another --out"
            }
        }
        let parent = URL(fileURLWithPath: dir).deletingLastPathComponent().path
        if lstat(parent, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR, access(parent, W_OK | X_OK) != 0 {
            return "\(dir): its directory \(parent) is not writable (\(String(cString: strerror(errno)))); fix its permissions or choose another --out"
        }
        return nil
    }

    /// Whether a temporary named after process `pid` is a leftover: this process's own, or
    /// one whose process has ended. A live other process's is a save in progress (perhaps
    /// another run's) and is left alone.
    public static func isLeftover(pid: Int32) -> Bool {
        pid == getpid() || (kill(pid, 0) != 0 && errno == ESRCH)
    }

    /// Removes `<dir>.tmp-<pid>` directories that a save killed part-way left beside `dir`;
    /// a `<dir>.tmp-<pid>-old` (the old copy, moved aside where the file system could not
    /// exchange) is put back as `dir` when `dir` is missing, else removed.
    static func removeStaleTemporaries(_ dir: String) {
        let url = URL(fileURLWithPath: dir).standardizedFileURL
        let parent = url.deletingLastPathComponent().path, prefix = url.lastPathComponent + ".tmp-"
        let fm = FileManager.default
        for name in ((try? fm.contentsOfDirectory(atPath: parent)) ?? []).sorted() where name.hasPrefix(prefix) {
            let suffix = name.dropFirst(prefix.count), old = suffix.hasSuffix("-old")
            guard let pid = Int32(old ? suffix.dropLast(4) : suffix), isLeftover(pid: pid) else { continue }
            var st = stat()
            if old && lstat(url.path, &st) != 0 { try? fm.moveItem(atPath: parent + "/" + name, toPath: url.path) }
            else { try? fm.removeItem(atPath: parent + "/" + name) }
        }
    }

    /// `dir` without trailing slashes: `--out m/` names the directory `m`, and its temporary
    /// copy is `m.tmp-<pid>` beside it, not `m/.tmp-<pid>` inside what is replaced.
    public static func trimmed(_ dir: String) -> String {
        var d = dir
        while d.count > 1 && d.hasSuffix("/") { d.removeLast() }
        return d
    }

    public static func resolved(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
    }
}

/// An output flag given as an empty path: bad input (exit 1), not an output that failed.
public struct EmptyPathError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
