import Foundation
import Models
import TensorCore

/// The checkpoints of one output directory, `OUT/checkpoints/step-000123/`, on the
/// coordinator's disk. Only rank 0 calls this; `Checkpointer` makes it collective.
///
/// A checkpoint directory holds:
/// - `model/`: config.json, model.safetensors, tokenizer — a model directory in its own right
///   (`sft-dist eval --model OUT/checkpoints/step-000123/model` works);
/// - `<component>.safetensors`: the tensors of each registered stateful component that has
///   any (`Training/State/`): `optimizer.safetensors` (AdamW: m, v, t), `old_policy.safetensors`
///   (psft's snapshot), …;
/// - `state.json` (`CheckpointState`), `recipe.yaml` (for people), and `manifest.json`
///   (`CheckpointManifest`: sizes and XXH64 of all of the above), written last.
///
/// Saving writes all of it into `.tmp-step-000123-<pid>/`, fsyncs every file and directory,
/// then renames the directory into place and fsyncs the parent. A directory named `step-*`
/// is therefore always complete; a kill mid-save leaves only a `.tmp-*` directory, removed
/// by the next save.
struct CheckpointStore {
    let directory: String

    static func name(_ step: Int) -> String {
        let digits = String(step)
        return "step-" + String(repeating: "0", count: max(0, 6 - digits.count)) + digits
    }

    /// Published checkpoints, oldest first.
    func list() -> [(step: Int, path: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { n -> (Int, String)? in
            guard n.hasPrefix("step-"), let s = Int(n.dropFirst(5)), s >= 0 else { return nil }
            return (s, directory + "/" + n)
        }.sorted { $0.0 < $1.0 }
    }

    /// Leftovers of saves or deletions that a kill interrupted: `.tmp-step-…-<pid>` and
    /// `.tmp-delete-<pid>-…`, removed once process `pid` is gone — a live one is another run
    /// writing here, whose save this would break.
    func removeTemporaries() {
        for n in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where n.hasPrefix(".tmp-") {
            let parts = n.split(separator: "-")
            let pid = n.hasPrefix(".tmp-delete-") ? parts.dropFirst(2).first.flatMap { Int32($0) } : parts.last.flatMap { Int32($0) }
            if let pid, !ReplaceableOutput.isLeftover(pid: pid) { continue }
            try? FileManager.default.removeItem(atPath: directory + "/" + n)
        }
    }

    struct Contents {
        var model: LanguageModel
        var tokenizer: Tokenizer
        /// Each stateful component's state, by name (the values are also in `state`).
        var components: [String: ComponentState]
        var state: CheckpointState
    }

    /// The checkpoints' directory, created if missing; a path that became a file during the
    /// run is named so (Foundation's reason read "File exists").
    static func createDirectory(_ directory: String) throws {
        let fm = FileManager.default
        do { try fm.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            var isDirectory: ObjCBool = false
            let reason = fm.fileExists(atPath: directory, isDirectory: &isDirectory) && !isDirectory.boolValue
                ? "it exists and is not a directory" : MessageText.reason(error, for: directory)
            throw CheckpointError("\(directory): cannot create the checkpoint directory (\(reason))")
        }
    }

    /// Writes a checkpoint for `state.step`; returns its directory.
    @discardableResult
    func write(_ c: Contents, keepLast: Int) throws -> String {
        let fm = FileManager.default
        let step = c.state.step, name = Self.name(step)
        try Self.createDirectory(directory)
        removeTemporaries()
        let tmp = directory + "/.tmp-\(name)-\(getpid())"
        let final = directory + "/" + name
        do {
            try fm.createDirectory(atPath: tmp, withIntermediateDirectories: false)
            try ModelDirectory.save(c.model, tokenizer: c.tokenizer, to: tmp + "/model",
                                    metadata: ["sft_dist_checkpoint_step": "\(step)"])
            if let lora = c.model as? LoRAAdaptable, lora.lora != nil {
                // model/ holds base and adapters together (what resume reads), which no command
                // loads as a model; adapter/ is the same adapters in peft's format, for
                // `eval --model BASE --adapter <checkpoint>/adapter`.
                try AdapterDirectory.save(lora, base: LoRAOutput.baseDirectory(c.state.recipe), to: tmp + "/adapter",
                                          tokenizer: c.tokenizer, metadata: ["sft_dist_checkpoint_step": "\(step)"])
            }
            for (name, component) in c.components where !component.tensors.isEmpty {
                try Self.writeTensors(component.tensors, to: tmp + "/" + CheckpointState.tensorFile(name))
            }
            try DurableFiles.write(c.state.encoded, to: tmp + "/" + CheckpointState.fileName)
            try DurableFiles.write(Array(c.state.recipe.yaml.utf8), to: tmp + "/recipe.yaml")
            FaultInjection.point("save-files", step: step, rank: 0)
            let manifest = try CheckpointManifest.make(directory: tmp, step: step)
            try DurableFiles.write(manifest.encoded, to: tmp + "/" + CheckpointManifest.fileName)
            try DurableFiles.syncTree(tmp)
            FaultInjection.point("save-before-rename", step: step, rank: 0)
            // A checkpoint of this step exists when resuming from an older one: replace it.
            if fm.fileExists(atPath: final) { try DurableFiles.removeDirectory(final, parent: directory) }
            try DurableFiles.rename(tmp, final)
            try DurableFiles.sync(directory, directory: true)
        } catch {
            try? fm.removeItem(atPath: tmp)
            throw CheckpointError("\(final): cannot write checkpoint (\(MessageText.reason(error, for: final)))")
        }
        FaultInjection.point("save-renamed", step: step, rank: 0)
        if keepLast > 0 {
            for old in list().filter({ $0.step != step }).dropLast(max(keepLast - 1, 0)) {
                try DurableFiles.removeDirectory(old.path, parent: directory)
            }
        }
        return final
    }

    static func writeTensors(_ tensors: [String: StateTensor], to path: String) throws {
        let names = tensors.keys.sorted()
        try withBuffers(names.map { tensors[$0]!.values }) { buffers in
            try SafeTensorsWriter.write(path: path, tensors: names.indices.map { (name: names[$0], shape: tensors[names[$0]]!.shape, data: buffers[$0]) })
        }
    }

    /// Pointers to every array at once (nested `withUnsafeBufferPointer`), for one write call.
    private static func withBuffers<R>(_ arrays: [[Float]], _ body: ([UnsafeBufferPointer<Float>]) throws -> R) rethrows -> R {
        func nest(_ i: Int, _ acc: [UnsafeBufferPointer<Float>]) throws -> R {
            i == arrays.count ? try body(acc) : try arrays[i].withUnsafeBufferPointer { try nest(i + 1, acc + [$0]) }
        }
        return try nest(0, [])
    }

    /// A run resumed at `step`: the published checkpoints of later steps here (not the one
    /// resumed from) are moved into `abandoned-after-step-N/`, which `latest` and keep_last do
    /// not see; the log line, or nil when there were none. Left, `--resume latest` took the
    /// newest of them (another branch's weights, and a metrics series of one row), and keep_last,
    /// pruning by step number, removed the checkpoint resumed from first. Moved, not deleted: a
    /// mistyped `--resume` loses nothing.
    func setAside(after step: Int, resumed: String) throws -> String? {
        let fm = FileManager.default
        let later = list().filter { $0.step > step && ReplaceableOutput.resolved($0.path) != ReplaceableOutput.resolved(resumed)
            && fm.fileExists(atPath: $0.path + "/" + CheckpointManifest.fileName) }
        guard !later.isEmpty else { return nil }
        var aside = directory + "/abandoned-after-step-\(step)", n = 2
        while fm.fileExists(atPath: aside) { aside = directory + "/abandoned-after-step-\(step)-\(n)"; n += 1 }
        let names = later.map { URL(fileURLWithPath: $0.path).lastPathComponent }
        do {
            try fm.createDirectory(atPath: aside, withIntermediateDirectories: false)
            for (c, name) in zip(later, names) { try DurableFiles.rename(c.path, aside + "/" + name) }
            try DurableFiles.sync(directory, directory: true)
        } catch {
            throw CheckpointError("\(aside): cannot move the checkpoints past the step resumed from there (\(MessageText.reason(error, for: aside)))")
        }
        return "resume: moved \(names.joined(separator: ", ")) to \(aside)/: checkpoints past step \(step), which --resume latest would take next (remove them when they are not needed)"
    }

    /// `"latest"` → the newest published checkpoint (nil when there is none); anything else
    /// is a checkpoint directory that must exist.
    func resolve(_ spec: String) throws -> String? {
        if spec == "latest" { return list().last?.path }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: spec, isDirectory: &isDir), isDir.boolValue else {
            throw CheckpointError("\(spec): no such checkpoint directory (\(suggestion(for: spec)))")
        }
        return spec
    }

    /// The checkpoints beside a mistyped one (or this run's), to pick from: directories with a
    /// manifest only (a file or an empty directory named step-5 is none). "latest" is offered
    /// only for this run's own, which is where it looks.
    private func suggestion(for spec: String) -> String {
        let parent = (spec as NSString).deletingLastPathComponent
        for store in [CheckpointStore(directory: parent.isEmpty ? "." : parent), self] {
            let names = store.list().filter { FileManager.default.fileExists(atPath: $0.path + "/" + CheckpointManifest.fileName) }
                .map { ($0.path as NSString).lastPathComponent }
            guard !names.isEmpty else { continue }
            let shown = names.count > 6 ? names.prefix(3) + ["…"] + names.suffix(3) : names[...]
            let own = ReplaceableOutput.resolved(store.directory) == ReplaceableOutput.resolved(directory)
            return "\(store.directory) holds \(shown.joined(separator: ", "))" + (own ? "; or give \"latest\"" : "")
        }
        return "use a directory like \(directory)/\(Self.name(100)) or \"latest\""
    }

    /// Verifies the manifest and every file, then reads the state and checks that its fields
    /// make sense. Tensors are read by `readParameters` and `readComponents` once the caller
    /// has checked the state against the run.
    static func readState(_ dir: String) throws -> CheckpointState {
        let manifest = try CheckpointManifest.verify(directory: dir)
        let path = dir + "/" + CheckpointState.fileName
        func requireListed(_ file: String) throws {
            guard manifest.files.contains(where: { $0.path == file }) else {
                throw CheckpointError("\(dir)/\(CheckpointManifest.fileName): corrupt manifest (does not list \(file))")
            }
        }
        try requireListed(CheckpointState.fileName)
        try requireListed("model/config.json")
        let data = FileManager.default.contents(atPath: path) ?? Data()
        try CheckpointState.checkNesting(data, path: path)
        let state = CheckpointState.isVersion1(data)
            ? try CheckpointState.version1(data, path: path, dir: dir, listed: Set(manifest.files.map(\.path)))
            : try CheckpointState.decode(data, path: path)
        try state.validate(path: path, manifestStep: manifest.step)
        for (name, saved) in state.components where !saved.tensors.isEmpty { try requireListed(CheckpointState.tensorFile(name)) }
        return state
    }

    static func readParameters(_ dir: String, into params: ParameterStore) throws {
        try ModelDirectory.loadParameters(params, from: try SafeTensorsCheckpoint(directory: dir + "/model"), source: dir + "/model")
    }

    /// Each component's saved state: values from `state`, tensors from its file, which must
    /// hold exactly the tensors `state` lists, with the listed shapes.
    static func readComponents(_ dir: String, _ state: CheckpointState) throws -> [String: ComponentState] {
        var out: [String: ComponentState] = [:]
        for (name, saved) in state.components {
            var c = ComponentState(values: saved.values)
            if !saved.tensors.isEmpty {
                let path = dir + "/" + CheckpointState.tensorFile(name)
                let file = try SafeTensorsFile(path: path)
                guard Set(file.names) == Set(saved.tensors.keys) else {
                    throw CheckpointError("\(path): holds \(file.names.sorted()) but \(CheckpointState.fileName) lists \(saved.tensors.keys.sorted())")
                }
                for (key, shape) in saved.tensors {
                    guard let info = file.tensors[key], info.shape == shape else {
                        throw CheckpointError("\(path): \"\(key)\" has shape \(file.tensors[key]?.shape ?? []), \(CheckpointState.fileName) says \(shape)")
                    }
                    c.tensors[key] = StateTensor(shape: shape, values: try file.floats(key))
                }
            }
            out[name] = c
        }
        return out
    }
}
