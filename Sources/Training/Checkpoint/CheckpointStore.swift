import Foundation
import Models
import TensorCore

/// The checkpoints of one output directory, `OUT/checkpoints/step-000123/`, on the
/// coordinator's disk. Only rank 0 calls this; `Checkpointer` makes it collective.
///
/// A checkpoint directory holds:
/// - `model/`: config.json, model.safetensors, tokenizer — a model directory in its own right
///   (`sft-dist eval --model OUT/checkpoints/step-000123/model` works);
/// - `optimizer.safetensors`: the optimizer's state by key (AdamW: m, v, t);
/// - `old_policy.safetensors`: the old-policy snapshot, for objectives that keep one (psft);
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

    /// Leftovers of saves or deletions that a kill interrupted.
    func removeTemporaries() {
        for n in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where n.hasPrefix(".tmp-") {
            try? FileManager.default.removeItem(atPath: directory + "/" + n)
        }
    }

    struct Contents {
        var model: LanguageModel
        var tokenizer: Tokenizer
        var optimizer: [String: [Float]]
        var oldPolicy: ParameterStore?
        var state: CheckpointState
    }

    /// Writes a checkpoint for `state.step`; returns its directory.
    @discardableResult
    func write(_ c: Contents, keepLast: Int) throws -> String {
        let fm = FileManager.default
        let step = c.state.step, name = Self.name(step)
        do { try fm.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw CheckpointError("\(directory): cannot create the checkpoint directory (\(MessageText.reason(error, for: directory)))")
        }
        removeTemporaries()
        let tmp = directory + "/.tmp-\(name)-\(getpid())"
        let final = directory + "/" + name
        do {
            try fm.createDirectory(atPath: tmp, withIntermediateDirectories: false)
            try ModelDirectory.save(c.model, tokenizer: c.tokenizer, to: tmp + "/model",
                                    metadata: ["sft_dist_checkpoint_step": "\(step)"])
            try Self.writeArrays(c.optimizer, to: tmp + "/optimizer.safetensors")
            if let old = c.oldPolicy { try Self.writeParameters(old, to: tmp + "/old_policy.safetensors") }
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

    static func writeArrays(_ arrays: [String: [Float]], to path: String) throws {
        let keys = arrays.keys.sorted()
        var flat: [Float] = []
        var ranges: [Range<Int>] = []
        for k in keys { ranges.append(flat.count..<(flat.count + arrays[k]!.count)); flat += arrays[k]! }
        try flat.withUnsafeBufferPointer { p in
            let tensors = zip(keys, ranges).map { k, r in
                (name: k, shape: [r.count], data: UnsafeBufferPointer(rebasing: p[r]))
            }
            try SafeTensorsWriter.write(path: path, tensors: tensors)
        }
    }

    static func writeParameters(_ p: ParameterStore, to path: String) throws {
        let tensors = p.entries.map { e in
            (name: e.name, shape: e.shape, data: UnsafeBufferPointer(start: p.values + e.offset, count: e.count))
        }
        try SafeTensorsWriter.write(path: path, tensors: tensors)
    }

    /// `"latest"` → the newest published checkpoint (nil when there is none); anything else
    /// is a checkpoint directory that must exist.
    func resolve(_ spec: String) throws -> String? {
        if spec == "latest" { return list().last?.path }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: spec, isDirectory: &isDir), isDir.boolValue else {
            throw CheckpointError("\(spec): no such checkpoint directory (use a directory like \(directory)/\(Self.name(100)) or \"latest\")")
        }
        return spec
    }

    /// Verifies the manifest and every file, then reads the state. Tensors are read by
    /// `readTensors` once the caller has checked the state against the run.
    static func readState(_ dir: String) throws -> CheckpointState {
        let manifest = try CheckpointManifest.verify(directory: dir)
        for required in [CheckpointState.fileName, "model/config.json", "optimizer.safetensors"]
        where !manifest.files.contains(where: { $0.path == required }) {
            throw CheckpointError("\(dir)/\(CheckpointManifest.fileName): corrupt manifest (does not list \(required))")
        }
        let path = dir + "/" + CheckpointState.fileName
        let state = try CheckpointState.decode(FileManager.default.contents(atPath: path) ?? Data(), path: path)
        guard state.step == manifest.step, state.step >= 0 else {
            throw CheckpointError("\(path): step \(state.step) disagrees with the manifest's \(manifest.step)")
        }
        return state
    }

    /// Loads parameters, optimizer arrays (shaped like `optimizerShape`) and the old policy.
    static func readTensors(_ dir: String, into params: ParameterStore, optimizerShape: [String: [Float]],
                            oldPolicy: ParameterStore?) throws -> [String: [Float]] {
        let weights = try SafeTensorsCheckpoint(directory: dir + "/model")
        try ModelDirectory.loadParameters(params, from: weights, source: dir + "/model")
        let file = try SafeTensorsFile(path: dir + "/optimizer.safetensors")
        guard Set(file.names) == Set(optimizerShape.keys) else {
            throw CheckpointError("\(dir)/optimizer.safetensors: holds \(file.names.sorted()) but this optimizer keeps \(optimizerShape.keys.sorted())")
        }
        var arrays: [String: [Float]] = [:]
        for (key, current) in optimizerShape {
            let v = try file.floats(key)
            guard v.count == current.count else {
                throw CheckpointError("\(dir)/optimizer.safetensors: \"\(key)\" has \(v.count) values, this model needs \(current.count)")
            }
            arrays[key] = v
        }
        if let old = oldPolicy {
            let path = dir + "/old_policy.safetensors"
            guard FileManager.default.fileExists(atPath: path) else {
                throw CheckpointError("\(dir): no old_policy.safetensors, but this objective keeps an old-policy snapshot")
            }
            try ModelDirectory.loadParameters(old, from: try SafeTensorsCheckpoint(file: path), source: path)
        }
        return arrays
    }
}
