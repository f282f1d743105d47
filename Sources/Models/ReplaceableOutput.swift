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
        guard !dir.isEmpty else { throw OutputError("--out: an empty path; give a directory") }
        let out = resolved(dir)
        for input in inputs {
            let i = resolved(input)
            if i == out { throw OutputError("\(dir): is the input \(input); write the result to another directory") }
            if i.hasPrefix(out + "/") { throw OutputError("\(dir): holds the input \(input); write the result to another directory") }
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

    /// A command's `--out` — given by hand, unlike a run's own `OUT/model` — is replaced only
    /// when it holds nothing a save would not write again: not a symbolic link (the link would
    /// become a directory), not a checkpoint's model (its manifest would no longer match),
    /// not a LoRA run's adapter (the commands write full weights), no file a save never writes
    /// (a user's README.md or notes).
    static func checkCommandOutput(_ dir: String, entries: [String]) throws {
        var st = stat()
        if lstat(trimmed(dir), &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK {
            throw OutputError("\(dir): is a symbolic link; give the directory itself")
        }
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

    /// For file outputs (`score --out`, `select --out/--scores`): nil, or one line when an
    /// output is an input or another output (it was silently overwritten: the data lost), or
    /// its directory is missing or not writable (checked before anything is written, so no
    /// output is left half-made when a later one fails). Paths as (flag, path).
    /// `inputDirectories` (`--model`, `--adapter`, `--ref-model`): an output may not replace a
    /// model file in one (`score --out run/model/model.safetensors` replaced the weights it
    /// read); other files there (an earlier `score --out run/model/scores.jsonl`) may be.
    public static func fileOutputsProblem(outputs: [(String, String)], inputs: [(String, String)],
                                          inputDirectories: [(String, String)] = []) -> String? {
        for (i, (flag, path)) in outputs.enumerated() {
            if let problem = notAFileProblem(path) { return "\(flag) \(path): \(problem)" }
            let p = resolved(path)
            for (inFlag, input) in inputs where resolved(input) == p {
                return "\(flag) \(path): is the input \(inFlag) \(input); write the result to another file"
            }
            for (inFlag, dir) in inputDirectories where FileManager.default.fileExists(atPath: p) && p.hasPrefix(resolved(dir) + "/")
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
            if fm.fileExists(atPath: dir) { try fm.removeItem(atPath: dir) }
            try fm.moveItem(atPath: tmp, toPath: dir)
        } catch {
            try? fm.removeItem(atPath: tmp)
            throw OutputError("\(dir): cannot save \(what) (\(MessageText.reason(error, for: dir)))")
        }
    }

    /// Whether a temporary named after process `pid` is a leftover: this process's own, or
    /// one whose process has ended. A live other process's is a save in progress (perhaps
    /// another run's) and is left alone.
    public static func isLeftover(pid: Int32) -> Bool {
        pid == getpid() || (kill(pid, 0) != 0 && errno == ESRCH)
    }

    /// Removes `<dir>.tmp-<pid>` directories that a save killed part-way left beside `dir`.
    static func removeStaleTemporaries(_ dir: String) {
        let url = URL(fileURLWithPath: dir).standardizedFileURL
        let parent = url.deletingLastPathComponent().path, prefix = url.lastPathComponent + ".tmp-"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? [] where name.hasPrefix(prefix) {
            if let pid = Int32(name.dropFirst(prefix.count)), isLeftover(pid: pid) { try? FileManager.default.removeItem(atPath: parent + "/" + name) }
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
